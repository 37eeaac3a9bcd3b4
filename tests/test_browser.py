"""The report in a real browser (headless Chromium through Selenium): drill-down, document pages, KWIC, and
the embedded CJK font. Skipped where Chromium, its driver or Selenium is missing; CI installs them
(.ci/run). The machine these run on has no CJK system font, so Chinese that renders is the page's own."""
from __future__ import annotations

import io as stdio
import shutil
import subprocess

import pandas as pd
import pytest
from synthetic_outputs import write_synthetic_outputs

from pipeline import io, report, trends

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from PIL import Image  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="no chromium + chromedriver (apt-get install chromium chromium-driver)")

# distinctive sentences, so a search has a known answer: 巡视 ×3 and 巡察 ×1 in two documents
TEXTS = {"d3-p1": "〔d3-p1〕开展巡视工作，", "d3-p2": "〔d3-p2〕巡视整改要见效，巡视成果要运用。",
         "d6-p1": "〔d6-p1〕推进巡察向基层延伸，", "d6-p2": "〔d6-p2〕落实中央八项规定精神。"}


@pytest.fixture(scope="module")
def page_url(tmp_path_factory) -> str:
    root = write_synthetic_outputs(tmp_path_factory.mktemp("browser"))
    paragraphs = pd.read_parquet(root / trends.PARAGRAPHS)
    body = paragraphs["kind"] == "body"
    paragraphs.loc[body, "text"] = "〔" + paragraphs.loc[body, "para_id"] + "〕" + paragraphs.loc[body, "text"]
    for para_id, text in TEXTS.items():
        paragraphs.loc[paragraphs["para_id"] == para_id, "text"] = text
    io.write_parquet(root / trends.PARAGRAPHS, paragraphs)
    trends.run(trends.TrendsSettings(resamples=200, correction="none"), root / trends.PARAGRAPHS,
               root / trends.PARAGRAPH_THEMES, root / "reports")
    return report.run(report.ReportSettings(), root).as_uri()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 "--window-size=1300,1000", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, page_url):
    browser.get(page_url)
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))
    return browser


def panel_paragraphs(page) -> list[str]:
    """The ids (〔…〕 prefixes) of the paragraphs the open panel lists, in order."""
    WebDriverWait(page, 5).until(lambda d: d.find_element(By.ID, "panel").is_displayed())
    return [text.split("〕")[0].lstrip("〔") for text in
            (p.text for p in page.find_elements(By.CSS_SELECTOR, "#panel li.para .para-text"))]


def test_a_shares_cell_opens_its_paragraphs_sorted_by_score(page):
    page.find_element(By.CSS_SELECTOR,
                      'td[data-cell][data-group="all"][data-theme="political"][data-period="2019"]').click()
    assert panel_paragraphs(page) == ["d1-p2", "d1-p1", "d2-p1"]  # scores 0.70, 0.65, 0.65 (ties by id)
    first = page.find_element(By.CSS_SELECTOR, "#panel li.para")
    assert "得分 0.700" in first.text
    assert all(part in first.text for part in ("在全面从严治党工作会议上的讲话", "2019-02-10", "一、总体要求"))
    assert "共有 3 段" in page.find_element(By.ID, "panel").text
    assert "校准概率" not in page.find_element(By.ID, "panel").text  # these shares are plain counts
    page.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert not page.find_element(By.ID, "panel").is_displayed()


def test_a_number_in_the_findings_opens_the_same_evidence(page):
    finding = page.find_element(By.CSS_SELECTOR, '#findings ~ ul.findings span[data-cell][data-period="2020"]')
    finding.click()
    assert panel_paragraphs(page) == ["d3-p3"]  # political in 2020: one paragraph (d4 carries none)


def test_a_document_title_opens_its_page_and_a_document_cell_its_theme_paragraphs(page):
    page.find_element(By.LINK_TEXT, "纪委全会工作报告").click()
    panel = page.find_element(By.ID, "panel")
    WebDriverWait(page, 5).until(lambda d: panel.is_displayed())
    assert page.current_url.endswith("#doc=d3")
    texts = [p.text for p in panel.find_elements(By.CSS_SELECTOR, ".doc-para > p:first-child")]
    assert [t[:7] for t in texts] == ["〔d3-p1〕", "〔d3-p2〕", "〔d3-p3〕"]  # in document order
    assert "反腐败 0.650" in panel.text and "一、总体要求" in panel.text  # themes with scores, the heading
    page.find_element(By.ID, "panel-close").click()
    cell = page.find_element(By.CSS_SELECTOR, '#doc-table td[data-doc-cell][data-theme="anti_corruption"]')
    cell.click()
    assert panel_paragraphs(page) == ["d3-p2", "d3-p1"]  # 0.70 before 0.65


def kwic(page, query: str, mode: str = "variants") -> tuple[str, list[list[str]]]:
    page.find_element(By.ID, "kwic-mode").send_keys("正则" if mode == "regex" else "词语")
    box = page.find_element(By.ID, "kwic-query")
    box.clear()
    box.send_keys(query, Keys.ENTER)
    status = page.find_element(By.ID, "kwic-status")
    WebDriverWait(page, 5).until(lambda d: status.text)
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in page.find_elements(By.CSS_SELECTOR, "#kwic-results tbody tr")]
    return status.text, rows


def test_kwic_lists_every_match_of_the_variants_with_its_context_and_document(page):
    status, rows = kwic(page, "巡视｜巡察")
    assert status.startswith("4 处匹配，2 篇文档")
    assert [(left, hit, right) for left, hit, right, *_ in rows] == [
        ("〔d3-p1〕开展", "巡视", "工作，"), ("〔d3-p2〕", "巡视", "整改要见效，巡视成果要运用。"),
        ("〔d3-p2〕巡视整改要见效，", "巡视", "成果要运用。"), ("〔d6-p1〕推进", "巡察", "向基层延伸，")]
    assert rows[0][3:] == ["纪委全会工作报告", "2020-03-01", "一、总体要求"]
    assert kwic(page, "巡[视察]", mode="regex")[0].startswith("4 处匹配")
    status, rows = kwic(page, "八项规定|中央八项规定", mode="variants")  # the longer variant wins, once
    assert status.startswith("1 处匹配") and rows[0][1] == "中央八项规定"
    assert kwic(page, "巡[", mode="regex")[0].startswith("正则表达式有误")


def ink_box(png: bytes) -> tuple[int, int]:
    """(width, height) of the dark pixels of a screenshot."""
    image = Image.open(stdio.BytesIO(png)).convert("L").point(lambda v: 255 if v < 128 else 0)
    left, top, right, bottom = image.getbbox() or (0, 0, 0, 0)
    return right - left, bottom - top


def glyph(page, family: str) -> tuple[int, int]:
    """The ink of 一 drawn 80px high in `family` (a horizontal stroke in a real CJK font, a box as tofu)."""
    element = page.execute_script(
        "const s = document.createElement('span'); s.textContent = '一';"
        "s.style.cssText = 'font-size:80px;line-height:1;padding:8px;display:inline-block;background:#fff;"
        "color:#000;font-family:' + arguments[0]; document.querySelector('main').prepend(s); return s;", family)
    return ink_box(element.screenshot_as_png)


def test_chinese_renders_with_the_embedded_font(page):
    loaded = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "document.fonts.load('16px \"Report Sans CJK\"', '政治建设').then(faces => done(faces.map(f => f.status)))")
    assert loaded == ["loaded"]
    assert page.execute_script("return getComputedStyle(document.querySelector('h1')).fontFamily").startswith(
        '"Report Sans CJK"')
    width, height = glyph(page, "inherit")
    assert width > 4 * height  # 一 is a stroke: the page's font drew it
    system_cjk = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("fc-list") else "unknown"
    if not system_cjk:  # and without it the same character is tofu: the check above can fail
        width, height = glyph(page, "sans-serif")
        assert width < 2 * height
