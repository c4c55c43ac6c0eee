"""Offline stand-ins for everything tierzero talks to; see `tierzero.sandbox.harness` for the
`Sandbox`, the ordered table of stand-ins and how to add one."""
