"""The patient pipeline: clip → reference motion → twin → atlas-to-patient adaptation → task prediction → artifacts."""
