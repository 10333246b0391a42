"""An open toolchain for LPUs: compiler, assembler, linker, simulator and editor support."""

__version__ = "0.1.0"
