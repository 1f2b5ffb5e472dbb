"""``bench --report``: a real (short) line benchmark on the tiny model, written as one self-contained HTML file that
opens in a browser from disk."""

import re

from pipeline.bench import BenchSettings, run_bench
from pipeline.bench_report import write_report
from tests.conftest import images_loaded


def test_bench_report_is_one_self_contained_page(tmp_path, redis_server, tiny_checkpoint, engine_cache, browser):
    s = BenchSettings(
        checkpoint=str(tiny_checkpoint),
        cache_dir=str(engine_cache),
        engine="onnxruntime",
        threads=1,
        max_batch=2,
        default_rate=8.0,
        seconds=2.0,
        sweeps=(),
        redis_url=redis_server.url,
    )
    result = run_bench(s, log=lambda *_: None)
    assert result["default_point"]["verdicts"] == result["default_point"]["frames"] > 0
    path = write_report(result, tmp_path / "bench")
    assert [p.name for p in (tmp_path / "bench").iterdir()] == ["report.html"]
    text = path.read_text()
    assert "Per offered rate" in text and "engine alone at max batch 2" in text
    sources = re.findall(r'<img src="([^"]{0,30})', text)
    assert len(sources) == 2 and all(src.startswith("data:image/png;base64,") for src in sources)  # CDF, batches
    browser.get(path.as_uri())
    assert browser.title.startswith("Line benchmark") and images_loaded(browser) == []
