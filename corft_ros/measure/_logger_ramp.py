"""The ramp of `corft-ros measure logger`: the same paced camera rates through the bare raw subscriber and through the
logger (each writer design), step by step, coarse then fine, until each contestant loses frames twice in a row;
each one's highest rate with nothing lost, and its ratio to the bare subscriber's."""

from __future__ import annotations

from corft_ros.measure._logger_bench import _LoggerBench


class _Ramp:
    """3. The same paced rates through a bare raw subscriber and through the logger (each writer design), rate by rate
    (x1.15 per step): each one's highest rate with nothing lost. Paced, not flooded, because a flooding publisher
    takes a whole core from the subscriber it measures.
    A step with a loss is tried once more: a single sporadic loss (measured: one frame, at ~280/s, for the bare
    subscriber as for the logger, on tmpfs as on disk) must not end a contestant's ramp; two in a row do."""

    def __init__(self, bench: _LoggerBench, writers: list[str]) -> None:
        self.bench = bench
        self.writers = writers
        self.contestants = ["bare"] + [f"logger_{w}" for w in writers]
        self.steps: list[dict] = []
        self.best = dict.fromkeys(self.contestants, 0.0)
        self.alive = dict.fromkeys(self.contestants, True)
        self.sporadic: dict[str, list[float]] = {c: [] for c in self.contestants}
        self.last_good = dict.fromkeys(self.contestants, 0.0)
        self.failed_at: dict[str, float] = {}

    def run(self) -> dict:
        self._coarse()
        self._fine()
        return self._result()

    def _attempt(self, who: str, rate: float) -> tuple[int, float]:
        bench = self.bench
        cam, seconds = bench.cams[0], bench.args.ramp_seconds
        if who == "bare":
            r = bench.bare(cam, seconds, rate)
            return r["published"] - r["received"], r["published"] / r["elapsed"]
        out = bench.with_logger([cam], {cam: rate}, seconds, who.removeprefix("logger_"))
        r = out["topics"][cam]
        return r["published"] - r["recorded"], r["published"] / out["elapsed"]

    def _run_step(self, rate: float, who_list: list[str], phase: str) -> None:
        step: dict = {"target_per_s": round(rate, 1), "phase": phase}
        for who in who_list:
            lost, achieved = self._attempt(who, rate)
            step[who] = {"published_per_s": round(achieved, 1), "lost": lost}
            if lost:
                retry_lost, achieved = self._attempt(who, rate)
                step[who]["retry"] = {"published_per_s": round(achieved, 1), "lost": retry_lost}
                if retry_lost:
                    self.alive[who] = False
                    self.failed_at[who] = rate
                    continue
                self.sporadic[who].append(round(rate, 1))
            self.best[who] = max(self.best[who], achieved)
            self.last_good[who] = rate
        self.steps.append(step)
        if not self.bench.args.json:
            print(f"ramp ({phase}) {rate:.0f}/s: " + ", ".join(
                f"{k} lost {v['lost']}" + (f"/{v['retry']['lost']}" if "retry" in v else "")
                for k, v in step.items() if isinstance(v, dict)), flush=True)

    def _coarse(self) -> None:
        rate = 60.0
        while any(self.alive.values()) and rate <= 5000:
            self._run_step(rate, [c for c in self.contestants if self.alive[c]], "coarse")
            rate *= 1.15

    def _fine(self) -> None:
        """Fine steps (x1.04) between each contestant's last clean coarse rate and the rate that ended its ramp: the
        ratio's resolution becomes ~4%, finer than the 10% the goal allows."""
        fine_done: set[str] = set()
        for k in (1, 2, 3):
            for who in self.contestants:
                if who in fine_done or who not in self.failed_at or self.last_good[who] <= 0:
                    continue
                target = self.last_good[who] * 1.04
                if target >= self.failed_at[who] * 0.995:
                    fine_done.add(who)
                    continue
                self.alive[who] = True
                self._run_step(target, [who], f"fine {k}")
                if not self.alive[who]:
                    fine_done.add(who)

    def _result(self) -> dict:
        best, image_bytes, writers = self.best, self.bench.image_bytes, self.writers
        result: dict = {"sporadic_losses_at_per_s": self.sporadic, "ramp": self.steps,
                        "bare_max_zero_drop_images_per_s": round(best["bare"], 1)}
        result["by_writer"] = {
            w: {"max_zero_drop_images_per_s": round(best[f"logger_{w}"], 1),
                "max_zero_drop_mb_per_s": round(best[f"logger_{w}"] * image_bytes / 1e6, 1),
                "ratio_to_bare_subscriber": (round(best[f"logger_{w}"] / best["bare"], 3) if best["bare"] else None)}
            for w in writers}
        first = result["by_writer"][writers[0]]
        result["writer"] = writers[0]
        result["max_zero_drop_images_per_s"] = first["max_zero_drop_images_per_s"]
        result["max_zero_drop_mb_per_s"] = first["max_zero_drop_mb_per_s"]
        result["ratio_to_bare_subscriber"] = first["ratio_to_bare_subscriber"]
        return result

