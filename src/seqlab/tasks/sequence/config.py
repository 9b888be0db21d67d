"""The kth and binary_add sections of params.yaml (torch-free: `seqlab validate` imports this module)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from seqlab.core.sections import (
    PositiveInt,
    Ratio,
    RecurrentModelConfig,
    Section,
    TaskSection,
    TrainConfig,
    rule,
)


class SplitSizes(Section):
    """Sample counts of the four splits every sequence task writes."""

    n_train: PositiveInt
    n_val: PositiveInt
    n_test: PositiveInt
    n_generalization: PositiveInt


class KthDataConfig(SplitSizes):
    k: PositiveInt  # 1-based position of the digit to output
    min_len: PositiveInt
    max_len: PositiveInt
    generalization_max_len: PositiveInt  # generalization split: lengths max_len+1 .. this

    @model_validator(mode="after")
    def _ranges(self) -> KthDataConfig:
        rule(self.k <= self.min_len, "`k` must be <= `min_len`, so every sequence has a k-th digit "
             f"(got k={self.k}, min_len={self.min_len})")
        rule(self.min_len <= self.max_len, f"`min_len` must be <= `max_len` (got {self.min_len} > {self.max_len})")
        rule(self.generalization_max_len > self.max_len, "`generalization_max_len` must be > `max_len` "
             f"(got {self.generalization_max_len} <= {self.max_len})")
        return self


class KthConfig(TaskSection):
    data: KthDataConfig
    model: RecurrentModelConfig
    train: TrainConfig


class BinaryAddDataConfig(SplitSizes):
    min_bits: PositiveInt
    max_bits: PositiveInt
    generalization_bits: PositiveInt  # generalization split: operands of max_bits+1 .. this many bits
    long_run_ratio: Ratio  # share of training pairs with one long run of same-kind bit positions

    @model_validator(mode="after")
    def _ranges(self) -> BinaryAddDataConfig:
        rule(self.min_bits <= self.max_bits, f"`min_bits` must be <= `max_bits` (got {self.min_bits} > {self.max_bits})")
        rule(self.generalization_bits > self.max_bits, "`generalization_bits` must be > `max_bits` "
             f"(got {self.generalization_bits} <= {self.max_bits})")
        return self


class BinaryAddTrainConfig(TrainConfig):
    loss: Literal["bce", "mse"]  # mse: the seed's squared error of the sigmoid output


class BinaryAddConfig(TaskSection):
    data: BinaryAddDataConfig
    model: RecurrentModelConfig
    train: BinaryAddTrainConfig
