"""axe-core in the browser tests: inject it into the page, run it, fail on serious findings.

axe-core comes from the ``axe-playwright-python`` package (a test dependency, which ships
``axe.min.js``, axe-core's Mozilla Public License 2.0 build); nothing of it is in this
repository. No network is used: the script is read from the installed package and evaluated in
the page.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

AXE_JS = Path(str(resources.files("axe_playwright_python") / "axe.min.js"))
#: Findings of these impacts fail a test.
FAILING_IMPACTS = ("critical", "serious")


def run_axe(page, *, context: str = "body") -> list[dict]:
    """Run axe-core on ``context`` of ``page``; its violations, each a dict with ``id``,
    ``impact``, ``help`` and ``nodes`` (the offending elements' selectors and HTML)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    return page.evaluate(
        """async (context) => {
            const results = await window.axe.run(document.querySelector(context), {
                resultTypes: ['violations'],
            });
            return results.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 200)})),
            }));
        }""",
        context,
    )


def describe(violations: list[dict]) -> str:
    """A readable list of violations for an assertion message."""
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({len(v['nodes'])} element(s))")
        lines.extend(f"    {n['target']}: {n['html']}" for n in v["nodes"][:5])
    return "\n".join(lines)


def assert_no_serious_violations(page, *, context: str = "body") -> list[dict]:
    """Fail when axe-core finds critical or serious issues; returns the minor ones."""
    violations = run_axe(page, context=context)
    bad = [v for v in violations if v["impact"] in FAILING_IMPACTS]
    assert not bad, "axe-core found critical or serious issues:\n" + describe(bad)
    return violations


#: The relative luminance of a CSS ``rgb(...)`` colour, as WCAG 2 computes it (sRGB).
LUMINANCE = """const lum = (rgb) => {
        const [r, g, b] = rgb.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => {
            v /= 255;
            return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };"""

#: Contrast of each visible, enabled coloured button (ipywidgets' ``mod-*`` styles): the text
#: colour against the fill, as WCAG 2 computes it.
BUTTON_CONTRASTS = (
    """() => {
    """
    + LUMINANCE
    + """
    const out = [];
    for (const el of document.querySelectorAll('.jupyter-button[class*="mod-"]')) {
        if (el.disabled || el.offsetParent === null) continue;
        const style = getComputedStyle(el);
        const [a, b] = [lum(style.color), lum(style.backgroundColor)];
        out.push({text: el.textContent.trim(), cls: el.className,
                  ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
    }
    return out;
}"""
)


def assert_buttons_readable(page, minimum: float = 4.5) -> list[dict]:
    """Fail when a visible coloured button's text is below ``minimum``:1 against its fill."""
    buttons = page.evaluate(BUTTON_CONTRASTS)
    low = [b for b in buttons if b["ratio"] < minimum]
    assert not low, f"buttons below {minimum}:1: {low}"
    return buttons


#: The luminance of the page's background (the first opaque one from the body up, else the
#: canvas's) and of the app's text.
PAGE_COLOURS = (
    """() => {
    """
    + LUMINANCE
    + """
    const opaque = (c) => c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c);
    let background = null;
    for (const el of [document.body, document.documentElement]) {
        const c = getComputedStyle(el).backgroundColor;
        if (opaque(c)) { background = c; break; }
    }
    const scheme = getComputedStyle(document.documentElement).colorScheme;
    background = background || (scheme === 'dark' ? 'rgb(18, 18, 18)' : 'rgb(255, 255, 255)');
    const text = getComputedStyle(document.querySelector('.rw-builder')).color;
    return {background, text, backgroundLum: lum(background), textLum: lum(text)};
}"""
)


def assert_page_colours(page, dark: bool) -> dict:
    """Fail unless the page's background is dark and its text light (``dark``), or the other
    way round; returns the colours found."""
    found = page.evaluate(PAGE_COLOURS)
    if dark:
        assert found["backgroundLum"] < 0.05 and found["textLum"] > 0.4, found
    else:
        assert found["backgroundLum"] > 0.8 and found["textLum"] < 0.1, found
    return found
