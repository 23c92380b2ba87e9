"""The report renders in a real browser: headless Chromium (Debian's package, which `make setup`
installs) loads the page offline, every plotly figure draws, circuitsvis views mount, and the
console stays silent."""

import re
import shutil
import subprocess

import pytest

import instr_interp as ii
from instr_interp.report.page import write_report
from instr_interp.report.sections_shift import attribution_sections
from instr_interp.report.sections_sparcom import dataset_section, firing_section, isn_sections
from instr_interp.sparcom.selection import sets_from_firing

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is missing: `make setup` installs Debian's chromium package"
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
            "--enable-unsafe-swiftshader",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_every_figure_renders_without_console_errors(tiny, small_data, tmp_path):
    (probe,) = ii.run(tiny, small_data, [ii.NeuronFiring(activation_sums=True)], progress=False)
    stats = probe.result()
    example = ii.attribute(tiny, small_data[0], response="The answer is four.")
    sets = sets_from_firing(stats, top=0.05)
    sections = [
        dataset_section(small_data),
        firing_section(stats),
        *isn_sections(sets, sets.permutation_test(n_permutations=20)),
        *attribution_sections(example, {}),
    ]
    path = write_report(sections, tmp_path / "index.html")
    n_figures = path.read_text().count("Plotly.newPlot")
    assert n_figures == sum(len(s.figures) for s in sections)

    out = _chromium("--dump-dom", path.as_uri())
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    assert dom.count('class="plot-container plotly"') == n_figures  # every figure drew its SVG
    # circuitsvis mounted its React view: the container (empty in the file) now holds the token buttons
    views = re.findall(r'<div id="circuits-vis-[^"]+"[^>]*>(.{0,400})', dom)
    assert views and all(">density</div>" in v for v in views)
    # Chromium's software GL reports its own performance notes ("GL Driver Message ... GPU stall") on the
    # console; those come from the browser's driver, not from the page, and are the only lines let through.
    console = [
        line for line in out.stderr.splitlines() if ":CONSOLE" in line and "GL Driver Message" not in line
    ]
    assert not console, console[:5]


def test_token_text_cannot_run_script_in_the_report(tiny, small_data, tmp_path):
    """A token string holding ``</script>`` (reachable from a saved Attribution) stays text."""
    payload = "</script><img src=x onerror=\"document.title='pwned'\"><!--"
    example = ii.attribute(tiny, small_data[0], response="The answer is four.")
    example.tokens[int(example.prompt_positions[0])] = payload  # as a crafted saved result would hold
    path = write_report(attribution_sections(example, {}), tmp_path / "index.html", title="safe")
    assert payload not in path.read_text()  # the raw sequence never reaches the page
    out = _chromium("--dump-dom", path.as_uri())
    assert out.returncode == 0, out.stderr[-2000:]
    assert "<title>safe</title>" in out.stdout and "pwned" not in out.stdout.split("</head>")[0]
    assert "<img src" not in out.stdout  # no element was injected
    views = re.findall(r'<div id="circuits-vis-[^"]+"[^>]*>(.{0,400})', out.stdout)
    assert views and all(">density</div>" in v for v in views)  # the views still mount
