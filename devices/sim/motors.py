"""A hand-written EPICS motor record (VAL, RBV, DMOV, MOVN, VELO, STOP, HLM, LLM...) for the stages."""

from __future__ import annotations

import asyncio
import math

from caproto.server import PVGroup, pvproperty


class MotorGroup(PVGroup):
    """An EPICS motor record (VAL, RBV, DMOV, MOVN, VELO, STOP, HLM, LLM, EGU...) moving at VELO."""

    motor = pvproperty(value=0.0, name="", record="motor", precision=4)

    def __init__(
        self,
        *args,
        velocity: float,
        limits: tuple[float, float],
        egu: str = "mm",
        description: str = "",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.defaults = {"velocity": velocity, "limits": limits, "egu": egu, "description": description}
        self._new_target = False
        self._target = 0.0
        self._moving = False
        self._stop_requested = False

    @motor.putter
    async def motor(self, instance, value):
        fields = instance.field_inst
        low, high = fields.user_low_limit.value, fields.user_high_limit.value
        if low < high and not (low <= value <= high):
            await fields.limit_violation.write(1)
            raise ValueError(f"{self.prefix} target {value} outside soft limits [{low}, {high}]")
        await fields.limit_violation.write(0)
        # The loop reads the target from here: VAL itself only changes after this putter returns.
        self._target = float(value)
        self._new_target = True
        return value

    async def _on_limit_change(self, instance, value):
        # As in the motor record, VAL's control limits follow LLM/HLM, so clients (ophyd's
        # check_value) see the soft limits and refuse out-of-range targets themselves.
        fields = self.motor.field_inst
        low = value if instance is fields.user_low_limit else fields.user_low_limit.value
        high = value if instance is fields.user_high_limit else fields.user_high_limit.value
        await self.motor.write_metadata(lower_ctrl_limit=low, upper_ctrl_limit=high)
        return value

    async def _on_stop(self, instance, value):
        # Like the motor record, STOP only acts on a move in progress; the RunEngine sends STOP
        # to every motor it touched when a plan ends, and that must not cancel the next move.
        if value and (self._moving or self._new_target):
            self._stop_requested = True
        return 0

    @motor.startup
    async def motor(self, instance, async_lib):
        fields = instance.field_inst
        fields.stop.putter = self._on_stop
        fields.user_low_limit.putter = self._on_limit_change
        fields.user_high_limit.putter = self._on_limit_change
        await fields.velocity.write(self.defaults["velocity"])
        await fields.user_low_limit.write(self.defaults["limits"][0])
        await fields.user_high_limit.write(self.defaults["limits"][1])
        await fields.engineering_units.write(self.defaults["egu"])
        await fields.description.write(self.defaults["description"])
        await fields.motor_step_size.write(1e-4)
        await fields.done_moving_to_value.write(1)
        tick = 0.02
        while True:
            if not self._new_target:
                await asyncio.sleep(tick)
                continue
            self._new_target = False
            self._moving = True
            await fields.done_moving_to_value.write(0)
            await fields.motor_is_moving.write(1)
            position = fields.user_readback_value.value
            while True:
                if self._stop_requested:
                    self._target = position
                    await instance.write(position, verify_value=False)
                    break
                target = self._target
                step = max(fields.velocity.value, 1e-6) * tick * self.parent.clock.scale
                if abs(target - position) <= step:
                    position = target
                    await fields.user_readback_value.write(position)
                    await fields.dial_readback_value.write(position)
                    break
                position += math.copysign(step, target - position)
                await fields.user_readback_value.write(position)
                await fields.dial_readback_value.write(position)
                await asyncio.sleep(tick)
                self._new_target = False  # retargeted while moving: the loop follows _target
            self._moving = False
            self._stop_requested = False
            await fields.motor_is_moving.write(0)
            await fields.done_moving_to_value.write(1)
