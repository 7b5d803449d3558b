"""Keeping identifying data out of clips: a clip carries a pseudonym, never a name or a birth date.

The check is on keys, at any depth: a key that names a person's identity is refused before anything is written. It
cannot tell whether a pseudonym *value* is really a name; the capture app generates pseudonyms so that it never is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Keys (normalised: lower case, letters and digits only) refused anywhere in metadata, sensor records and JSON
#: sections: direct identifiers under GDPR Art. 4(1) / HIPAA §164.514(b)(2) that the product never needs.
IDENTITY_KEYS: frozenset[str] = frozenset(
    {
        "patientname", "firstname", "lastname", "surname", "givenname", "fullname", "familyname", "middlename",
        "maidenname", "forename", "birthdate", "dateofbirth", "dob", "birthday", "birthplace", "placeofbirth",
        "streetaddress", "homeaddress", "postaladdress", "postcode", "zipcode", "phone", "phonenumber", "telephone",
        "mobile", "email", "emailaddress", "ssn", "socialsecuritynumber", "nationalid", "insurancenumber",
        "healthinsurancenumber", "medicalrecordnumber", "mrn", "passportnumber",
    }
)  # fmt: skip
#: Refused in metadata (where the patient lives) but allowed in sections, where ``name`` labels events and metrics.
METADATA_ONLY_KEYS: frozenset[str] = frozenset({"name", "names"})


class IdentifyingDataError(ValueError):
    """Metadata or a section that would put a person's identity into a clip."""


def _normalise(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def check_no_identity(value: Any, where: str, *, in_metadata: bool) -> None:
    """Raise :class:`IdentifyingDataError` naming the first identifying key found in ``value`` (dicts and lists)."""
    refused = IDENTITY_KEYS | METADATA_ONLY_KEYS if in_metadata else IDENTITY_KEYS
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if _normalise(str(key)) in refused:
                    raise IdentifyingDataError(
                        f"{path}.{key}: a clip must not hold a person's name, birth date or contact details; "
                        "store the patient's pseudonym (patient.pseudonym) and anthropometrics "
                        "(height_m, mass_kg, affected_side) only"
                    )
                stack.append((f"{path}.{key}", sub))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
