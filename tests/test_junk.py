"""Junk rules: the lines of document-sharing sites go; real sentences that mention 下载 or 文档 stay."""
from __future__ import annotations

import pytest

from pipeline.ingest.junk import JunkRules
from pipeline.ingest.normalize import normalize_line

JUNK = [
    "整理文档很辛苦,赏杯茶钱您下走!", "免费阅读已结束,点击下载阅读编辑剩下 ...", "阅读已结束,您可以下载文档离线阅读编辑",
    "资源描述", "1 / 8", "下载文档,编辑使用", "©2015-2020 m.777doc.com 三七文档.",
    "备案号:鲁ICP备2024069028号-1 客服联系 QQ:2149211541", "×", "保存成功", "第 2 页 共 6 页",
    "剩余5页未读,继续阅读", "Copyright © doc88.com 道客巴巴 All Rights Reserved", "该文档贡献者很忙,什么也没留下。",
    "原创力文档 max.book118.com", "- 4 -", "立即下载", "分享到:", "返回顶部",
]
REAL = [
    "各党支部要及时下载学习资料，组织党员认真学习。",
    "要把文档管理纳入日常工作，确保党建档案完整规范。",
    "全年共编印学习文档12册，下载学习课件3000余次，党员学习积极性明显提高。",
    "第一书记要经常深入农户家中，了解群众的所思所盼。",
    "阅读原著是党员干部的基本功，要坚持读原著、学原文、悟原理。",
    "2019年",
]


@pytest.fixture(scope="module")
def rules() -> JunkRules:
    return JunkRules.load()


@pytest.mark.parametrize("line", JUNK)
def test_site_junk_is_removed(rules, line):
    assert rules.match(normalize_line(line)) is not None, line


@pytest.mark.parametrize("line", REAL)
def test_real_sentences_are_kept(rules, line):
    assert rules.match(normalize_line(line)) is None, line


def test_the_site_is_recognised_from_its_footer(rules):
    kept, report = rules.clean([normalize_line(x) for x in ["正文第一段。", "©2015-2020 m.777doc.com 三七文档."]])
    assert kept == ["正文第一段。"] and report.site == "三七文档 (777doc)"


def test_a_custom_rule_file_extends_the_rules(tmp_path):
    custom = tmp_path / "rules.yaml"
    custom.write_text("rules:\n  - id: my_site\n    max_chars: 30\n    pattern: '.*某某网.*'\n    site: 某某网\n",
                      encoding="utf-8")
    assert JunkRules.load(custom).match("来源：某某网") is not None


def test_a_bad_rule_names_itself(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - id: broken\n    max_chars: 10\n    pattern: '(unclosed'\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken"):
        JunkRules.load(bad)
