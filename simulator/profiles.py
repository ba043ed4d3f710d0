"""Named fault profiles: WebSocket fault rates plus REST latency / failure rates.

* `clean`   no faults, REST answers in a few milliseconds;
* `flaky`   moderate faults, REST median 0.5 s, often over a second, 5% take 3-6 s (default);
* `hostile` high fault rates everywhere, REST slow and failing often;
* `tail`    clean stream; REST fast (~20 ms) except ~5% of requests taking 2-4 s
            (for hedging benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.faults import RestFaultRates, WsFaultRates


@dataclass(frozen=True, slots=True)
class Profile:
    """A named pair of fault rates."""

    name: str
    ws: WsFaultRates
    rest: RestFaultRates


PROFILES: dict[str, Profile] = {
    "clean": Profile(
        "clean",
        WsFaultRates(),
        RestFaultRates(latency_median_ms=2.0, latency_sigma=0.3),
    ),
    "flaky": Profile(
        "flaky",
        WsFaultRates(
            duplicate=0.05,
            disconnect=0.0005,
            malformed=0.01,
            out_of_order=0.01,
            drop=0.01,
            wrong_value=0.002,
            phantom=0.002,
        ),
        RestFaultRates(
            latency_median_ms=500.0,
            latency_sigma=0.9,
            slow_rate=0.05,
            slow_ms=3000.0,
            timeout_rate=0.02,
            hang_ms=60_000.0,
            error_rate=0.05,
            throttle_rate=0.05,
            retry_after_s=1,
        ),
    ),
    "hostile": Profile(
        "hostile",
        WsFaultRates(
            duplicate=0.2,
            disconnect=0.003,
            malformed=0.05,
            out_of_order=0.05,
            drop=0.05,
            wrong_value=0.01,
            phantom=0.01,
            max_delay_frames=50,
        ),
        RestFaultRates(
            latency_median_ms=1000.0,
            latency_sigma=1.0,
            slow_rate=0.1,
            slow_ms=5000.0,
            timeout_rate=0.1,
            hang_ms=120_000.0,
            error_rate=0.15,
            throttle_rate=0.15,
            retry_after_s=2,
        ),
    ),
    "tail": Profile(
        "tail",
        WsFaultRates(),
        RestFaultRates(latency_median_ms=20.0, latency_sigma=0.25, slow_rate=0.05, slow_ms=2000.0),
    ),
}

PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def get_profile(name: str) -> Profile:
    """The profile called `name`; ValueError listing the known names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (known: {', '.join(PROFILE_NAMES)})") from None
