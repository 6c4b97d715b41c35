"""Controller modes by name: the Python side of a C++ controller mode, registered on its class.

A controller the runtime can run in ACTIVE is one C++ ``ControllerMode`` subclass plus one class
here registered with ``@register_controller("name")``: ``attach(runtime)`` builds the C++ mode for
the runtime's robot, registers it on the runtime's loop under that name (``loop.register_mode``) and
returns the Python handle operators and procedures use (for ``wbc``: :class:`WholeBody`, its named
targets). A deploy config or a front end selects it by name (``controller: wbc``); nothing else in
the runtime names a concrete controller. ``pd`` is the built-in joint-target PD (``joint_pd``) and
needs no registration. See docs/extending.md for a worked example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from vertebra.runtime.errors import VertebraError

if TYPE_CHECKING:
    from vertebra.runtime.runtime import Runtime

_CONTROLLERS: dict[str, type[Controller]] = {}
C = TypeVar("C", bound="type[Controller]")

# Controller names that need no registration: the loop's built-in joint-target PD.
BUILTIN_CONTROLLERS = {"pd": "joint_pd"}


class Controller(ABC):
    """A registered controller mode: how to build it for a runtime and what ACTIVE mode it is."""

    name = ""

    @abstractmethod
    def attach(self, runtime: Runtime) -> Any:
        """Configuration time: build the C++ mode, ``runtime.loop.register_mode(self.name, mode)``,
        and return the handle front ends use (or the C++ mode itself)."""

    def before_activate(self, handle: Any) -> None:
        """Called just before the runtime requests this mode (HOLD -> ACTIVE); default: nothing."""


def register_controller(name: str) -> Callable[[C], C]:
    """Class decorator: make a controller selectable by `name` (``controller: <name>``)."""

    def wrap(cls: C) -> C:
        if name in _CONTROLLERS or name in BUILTIN_CONTROLLERS:
            raise VertebraError(f"controller '{name}' is already registered"
                                f"{' by ' + _CONTROLLERS[name].__name__ if name in _CONTROLLERS else ' (built in)'}")
        cls.name = name
        _CONTROLLERS[name] = cls
        return cls

    return wrap


def available_controllers() -> list[str]:
    return sorted([*BUILTIN_CONTROLLERS, *_CONTROLLERS])


def controller_class(name: str) -> type[Controller]:
    if name not in _CONTROLLERS:
        raise VertebraError(f"unknown controller '{name}'; controllers are: {', '.join(available_controllers())}")
    return _CONTROLLERS[name]


def _needs_wbc_section(runtime: Runtime, name: str) -> None:
    """Controllers built on the whole-body QP need the robot config's ``wbc:`` section."""
    if runtime.cfg.wbc is None:
        raise VertebraError(f"controller '{name}' needs a 'wbc:' section in the robot config {runtime.cfg.file}")


@register_controller("wbc")
class WholeBodyControllerMode(Controller):
    """The whole-body inverse-dynamics QP (cpp/wbc); the handle is :class:`WholeBody`."""

    def attach(self, runtime: Runtime) -> Any:
        from vertebra.runtime.wbc import WholeBody

        _needs_wbc_section(runtime, self.name)
        wb = WholeBody(runtime.cfg, runtime.model, keep_out=runtime.keep_out)
        runtime.loop.register_mode(self.name, wb.ctrl)
        return wb

    def before_activate(self, handle: Any) -> None:
        # Targets are sent as one cumulative value: forget the last session's (WholeBody.reset_targets).
        handle.reset_targets()


@register_controller("walk")
class WalkControllerMode(Controller):
    """Walking on the whole-body QP (cpp/locomotion/walk_mode.hpp); the handle is :class:`Walker`."""

    def attach(self, runtime: Runtime) -> Any:
        from vertebra.runtime.walk import Walker, build_walk_config, walk_bounds

        _needs_wbc_section(runtime, self.name)
        build_walk_config(runtime.cfg)  # a robot it cannot walk is said first, then missing bounds
        w = Walker(runtime.cfg, runtime.model, keep_out=runtime.keep_out, bounds=walk_bounds(runtime.safety))
        runtime.loop.register_mode(self.name, w.mode)
        return w

    def before_activate(self, handle: Any) -> None:
        handle.wb.reset_targets()
