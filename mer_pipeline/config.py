"""The stage-one configuration: everything that decides the content of a shard."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .flow import TVL1Params


@dataclass(frozen=True)
class PrepConfig:
    """Everything that decides the content of a shard (hashed into the manifest's config_hash).

    `backend`: a face backend of `face.BACKENDS`; `size`: side of the aligned crop in pixels;
    `flow`: a method of `flow.FLOW_METHODS`; `stabilize`: remove rigid head motion onset -> apex;
    `keep_frames`: also store this many aligned frames onset..offset (0: none); `tvl1`: the TV-L1
    parameters of the shards' flow."""

    backend: str = "dlib"
    size: int = 128
    flow: str = "tvl1"
    stabilize: bool = True
    keep_frames: int = 0
    # 3 pyramid levels (step 0.5), 3 warps, 10 inner iterations: the same end-point error as
    # OpenCV's defaults on planted sub-pixel motion at ~1.7x the speed (docs/performance.md).
    tvl1: TVL1Params = field(default_factory=lambda: TVL1Params(nscales=3, warps=3, scale_step=0.5,
                                                                inner_iterations=10))

    def as_dict(self) -> dict:
        return asdict(self)
