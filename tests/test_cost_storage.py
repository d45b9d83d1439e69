"""Cold-start load time (estimators/storage.py)."""

import pytest

from dsdeploy.estimators.storage import load_time

R1_FP8 = 673_150_159_333  # bytes


def test_single_drive():
    lt = load_time(R1_FP8, 7.0)
    assert lt.effective_gbs == 7.0 and lt.bound == "drives"
    assert lt.seconds == pytest.approx(R1_FP8 / 7e9)  # ≈ 96 s


def test_raid0_scales_without_mmap():
    lt = load_time(R1_FP8, 12.4, drives=4)
    assert lt.effective_gbs == pytest.approx(49.6)
    assert lt.seconds == pytest.approx(R1_FP8 / 49.6e9)
    assert load_time(R1_FP8, 12.4, drives=4, raid0=False).effective_gbs == 12.4


def test_mmap_page_cache_cap():
    # facts.md §2c: 4× gen5 RAID0 gave no benefit over one drive under mmap
    lt = load_time(R1_FP8, 12.4, drives=4, mmap=True)
    assert lt.effective_gbs == 12.4 and lt.bound == "page-cache"
    assert load_time(R1_FP8, 12.4, drives=4, mmap=True, page_cache_gbs=5.0).effective_gbs == 5.0


def test_host_link_cap():
    lt = load_time(10**12, 12.4, drives=8, host_link_gbs=63.0)
    assert lt.effective_gbs == 63.0 and lt.bound == "host-link"


def test_bad_inputs():
    with pytest.raises(ValueError):
        load_time(1, 0)
    with pytest.raises(ValueError):
        load_time(1, 1, drives=0)
