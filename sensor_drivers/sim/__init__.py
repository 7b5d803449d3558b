"""The virtual five-IMU patient: physically consistent IMU signals and ground truth for a walk test.

Gait comes from recorded healthy motion (DeepMimic, MIT licence; see ``data/ATTRIBUTION.md``), time-resampled, or
changed into a documented hemiparetic pattern; kinematics keep stance feet planted; IMU signals are synthesised from
the segment motion with configurable sensor errors, mountings and faults. ``docs/virtual-patient.md`` describes it all.
"""

from sensor_drivers.sim.config import OPTION_HELP, Disconnect, VirtualPatientConfig, from_source_options
from sensor_drivers.sim.gait_pattern import HemipareticParams
from sensor_drivers.sim.imu_errors import AxisErrors, ImuErrorConfig
from sensor_drivers.sim.magnetic import Dipole, MagneticEnvironment
from sensor_drivers.sim.mounting import Fault, Mounting, default_mounting
from sensor_drivers.sim.patient import SensorTrack, VirtualPatient, VirtualRecording
from sensor_drivers.sim.source import SimDriver  # registers the ``sim:`` source scheme
from sensor_drivers.sim.truth import JOINT_ANGLE_NAMES, GaitEvent, GroundTruth, SensorTruth, Stride

__all__ = [
    "JOINT_ANGLE_NAMES",
    "OPTION_HELP",
    "AxisErrors",
    "Dipole",
    "Disconnect",
    "Fault",
    "GaitEvent",
    "GroundTruth",
    "HemipareticParams",
    "ImuErrorConfig",
    "MagneticEnvironment",
    "Mounting",
    "SensorTrack",
    "SensorTruth",
    "SimDriver",
    "Stride",
    "VirtualPatient",
    "VirtualPatientConfig",
    "VirtualRecording",
    "default_mounting",
    "from_source_options",
]
