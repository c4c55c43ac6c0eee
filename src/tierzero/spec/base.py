"""Shared building blocks of the spec models."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class Model(BaseModel):
    """Every spec object rejects unknown keys, so a typo never silently disables a setting.

    Strict: a value must already have its field's type in the YAML. `cores: true` is a boolean,
    not 1; `cores: "2"` is a string, not 2; `enabled: 1` is a number, not true. A whole number
    still fills a decimal field (`memory_gb: 2`), and non-finite numbers (.inf, .nan) are refused."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True, str_strip_whitespace=False,
                              strict=True, allow_inf_nan=False)


Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lower-case DNS label: a-z, 0-9 and '-'")]


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a network in CIDR notation with host bits zero ({exc})") from None
    return value


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("not an IP address") from None
    return value


IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddressOrDhcp:
    """A VM's or container's address: static with its prefix length (`interface`, like
    10.10.0.11/24), or assigned by DHCP (`interface` None). Written and read as "dhcp" or
    "10.10.0.11/24", in the spec and in fingerprints alike."""

    interface: IPInterface | None = None

    @property
    def dhcp(self) -> bool:
        return self.interface is None

    @property
    def address(self) -> IPAddr | None:
        """The address without its prefix, like 10.10.0.11; None with DHCP."""
        return self.interface.ip if self.interface is not None else None

    def __str__(self) -> str:
        return "dhcp" if self.interface is None else str(self.interface)


DHCP = AddressOrDhcp()


def _ip_with_prefix(value: Any) -> AddressOrDhcp:
    if isinstance(value, AddressOrDhcp):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if value == "dhcp":
        return DHCP
    if "/" not in value:
        raise ValueError("a static address needs its prefix length, like 10.0.0.11/24, or use 'dhcp'")
    try:
        return AddressOrDhcp(ipaddress.ip_interface(value))
    except ValueError:
        raise ValueError("not an address with prefix length, like 10.0.0.11/24") from None


_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")


def _mac(value: str) -> str:
    if not _MAC.match(value):
        raise ValueError("not a MAC address like BC:24:11:00:00:01")
    if int(value[:2], 16) & 1:
        raise ValueError("a multicast MAC (first octet odd) cannot be a NIC address")
    return value.upper()


Cidr = Annotated[str, AfterValidator(_cidr)]
IPAddress = Annotated[str, AfterValidator(_ip)]
InterfaceAddress = Annotated[AddressOrDhcp, PlainValidator(_ip_with_prefix), PlainSerializer(str, return_type=str),
                             WithJsonSchema({"type": "string"})]
MacAddress = Annotated[str, AfterValidator(_mac)]
