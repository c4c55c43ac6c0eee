"""Offline stand-ins for everything tierzero talks to; see `tierzero.sandbox.harness` for the
`Sandbox` and how a stand-in registers itself."""

from tierzero.sandbox.harness import Sandbox, SandboxContext, register

__all__ = ["Sandbox", "SandboxContext", "register"]
