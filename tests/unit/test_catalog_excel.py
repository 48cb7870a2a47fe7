"""Excel import/export of catalog entries (政务数据资源目录编制模板).

Input files are built here with openpyxl the way departments fill them in (independently of the exporter), so
the parser is tested against hand-made layouts, and the exporter against the parser by round trip.
"""

from __future__ import annotations

import zipfile
from io import BytesIO
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from zhengshu.catalog.enums import (
    DATA_TYPE_LABELS,
    SENSITIVITY_ORDER,
    DataType,
    EntryLevel,
    OpeningType,
    ResourceFormat,
    SharingType,
    SharingWay,
    UpdateCycle,
)
from zhengshu.catalog.excel import (
    COLUMNS,
    GUIDE_SHEET,
    MAIN_SHEET,
    ImportReport,
    export_workbook,
    parse_workbook,
    template_workbook,
)
from zhengshu.catalog.schemas import EntryIn
from zhengshu.core.errors import ValidationFailed

ENTRY_HEADERS = [
    "序号",
    "信息资源名称",
    "信息资源代码",
    "信息资源分类码",
    "摘要",
    "资源格式",
    "格式细类",
    "共享类型",
    "共享条件",
    "不予共享依据",
    "共享方式",
    "开放类型",
    "开放条件",
    "更新周期",
    "层级",
    "标签",
    "关联资源代码",
    "职责依据",
]
ITEM_HEADERS = [
    "信息项名称",
    "字段名",
    "数据类型",
    "数据长度",
    "信息项描述",
    "信息项共享类型",
    "信息项开放类型",
    "敏感级别",
]
HEADERS = ENTRY_HEADERS + ITEM_HEADERS


def entry_row(seq: Any, name: str | None, **over: Any) -> list[Any]:
    values: dict[str, Any] = {
        "序号": seq,
        "信息资源名称": name,
        "信息资源代码": None,
        "信息资源分类码": "102001",
        "摘要": f"{name}的摘要",
        "资源格式": "数据库",
        "格式细类": "MySQL",
        "共享类型": "无条件共享",
        "共享条件": None,
        "不予共享依据": None,
        "共享方式": "接口",
        "开放类型": "不予开放",
        "开放条件": None,
        "更新周期": "每日",
        "层级": "部门",
        "标签": None,
        "关联资源代码": None,
        "职责依据": None,
    }
    values.update(over)
    return [values[h] for h in ENTRY_HEADERS]


def item_cells(name: str | None, data_type: Any = "C", length: Any = 20, **over: Any) -> list[Any]:
    values: dict[str, Any] = {
        "信息项名称": name,
        "字段名": None,
        "数据类型": data_type,
        "数据长度": length,
        "信息项描述": None,
        "信息项共享类型": None,
        "信息项开放类型": None,
        "敏感级别": None,
    }
    values.update(over)
    return [values[h] for h in ITEM_HEADERS]


def xlsx(
    rows: list[list[Any]],
    merges: tuple[str, ...] | list[str] = (),
    title: str | None = None,
    sheet: str = "Sheet1",
) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    if title:
        ws.append([title])
    for row in rows:
        ws.append(row)
    for rng in merges:
        ws.merge_cells(rng)
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


def errors_by_row(report: ImportReport) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for e in report.errors:
        found.setdefault(e.row, []).append(e.message)
    return found


# --------------------------------------------------------------------------------------------- good files


def test_repeated_layout_with_title_row() -> None:
    rows = [
        HEADERS,
        entry_row(1, "企业登记信息", 标签="企业、登记,法人；市场主体")
        + item_cells("企业名称", "字符型", 200, 字段名="qymc", 敏感级别="一般2"),
        entry_row(1, "企业登记信息", 标签="企业、登记,法人；市场主体") + item_cells("成立日期", "D", "8"),
        entry_row(1, "企业登记信息", 标签="企业、登记,法人；市场主体")
        + item_cells("注册资本", "货币", 18.0, 信息项共享类型="有条件共享"),
        entry_row(2, "个体工商户信息", 信息资源代码="102001/000007", 关联资源代码="102001/000001 102001/000002")
        + item_cells("经营者姓名", "字符"),
    ]
    report = parse_workbook(xlsx(rows, title="省市场监管局政务数据资源目录"))
    assert report.ok, report.errors
    assert report.header_row == 2
    assert report.total_entries == 2
    first, second = report.entries
    assert (first.row_from, first.row_to, first.code) == (3, 5, None)
    assert first.entry.name == "企业登记信息"
    assert first.entry.tags == ["企业", "登记", "法人", "市场主体"]
    assert [i.name for i in first.entry.items] == ["企业名称", "成立日期", "注册资本"]
    assert [i.data_type for i in first.entry.items] == ["C", "D", "Y"]
    assert [i.length for i in first.entry.items] == [200, 8, 18]
    assert first.entry.items[0].column_name == "qymc"
    assert first.entry.items[0].sensitivity == "一般2"
    assert first.entry.items[1].sensitivity == "一般1"  # default when empty
    assert first.entry.items[2].sharing_type == "有条件共享"
    assert first.entry.items[0].sharing_type is None
    assert (second.row_from, second.row_to, second.code) == (6, 6, "102001/000007")
    assert second.entry.related_codes == ["102001/000001", "102001/000002"]
    assert second.entry.items[0].data_type == "C"


def test_merged_layout() -> None:
    a = entry_row(1, "人口基本信息", 信息资源分类码="101001", 共享类型="有条件共享", 共享条件="用于政务服务身份核验")
    b = entry_row(2, "户籍迁移信息", 信息资源分类码="101002")
    blank = [None] * len(ENTRY_HEADERS)
    rows = [
        HEADERS,
        a + item_cells("姓名"),
        blank + item_cells("公民身份号码", "C", 18, 敏感级别="重要"),
        blank + item_cells("出生日期", "日期型", 8),
        b + item_cells("迁入地"),
        blank + item_cells("迁入日期", "D", 8),
    ]
    last = len(ENTRY_HEADERS)
    merges = []
    for col in range(1, last + 1):
        letter = chr(ord("A") + col - 1)
        merges += [f"{letter}2:{letter}4", f"{letter}5:{letter}6"]
    report = parse_workbook(xlsx(rows, merges))
    assert report.ok, report.errors
    assert [(p.row_from, p.row_to) for p in report.entries] == [(2, 4), (5, 6)]
    pop, move = (p.entry for p in report.entries)
    assert pop.sharing_type == "有条件共享"
    assert pop.sharing_condition == "用于政务服务身份核验"
    assert [i.name for i in pop.items] == ["姓名", "公民身份号码", "出生日期"]
    assert pop.items[1].sensitivity == "重要"
    assert pop.items[2].data_type == "D"
    assert move.class_code == "101002"
    assert len(move.items) == 2


def test_merged_item_cells_apply_to_every_row_of_the_merge() -> None:
    blank = [None] * len(ENTRY_HEADERS)
    rows = [
        HEADERS,
        entry_row(1, "婚姻登记信息") + item_cells("男方姓名", 敏感级别="一般3"),
        blank + item_cells("女方姓名"),
        blank + item_cells("登记日期", "D", 8, 敏感级别="一般1"),
    ]
    sens = chr(ord("A") + HEADERS.index("敏感级别"))
    name = chr(ord("A") + HEADERS.index("信息资源名称"))
    report = parse_workbook(xlsx(rows, [f"{sens}2:{sens}3", f"{name}2:{name}4"]))
    assert report.ok, report.errors
    items = report.entries[0].entry.items
    assert [i.sensitivity for i in items] == ["一般3", "一般3", "一般1"]


def test_entry_fields_written_on_first_row_only_and_numeric_class_code() -> None:
    blank = [None] * len(ENTRY_HEADERS)
    rows = [
        HEADERS,
        entry_row(None, "社保参保信息", 信息资源分类码=203001) + item_cells("参保人姓名"),
        blank + item_cells("参保状态", "C", 2),
        entry_row(None, "社保缴费信息", 信息资源分类码=203002.0) + item_cells("缴费金额", "Y", 18),
    ]
    report = parse_workbook(xlsx(rows))
    assert report.ok, report.errors
    assert [p.entry.class_code for p in report.entries] == ["203001", "203002"]
    assert [len(p.entry.items) for p in report.entries] == [2, 1]


def test_header_synonyms_and_decorations() -> None:
    headers = list(HEADERS)
    headers[headers.index("信息资源名称")] = "目录名称"
    headers[headers.index("摘要")] = "资源摘要"
    headers[headers.index("更新周期")] = "更新频率"
    headers[headers.index("数据长度")] = "数据长度（字节）"
    headers[headers.index("信息项名称")] = "*信息项名称"
    headers[headers.index("数据类型")] = "字段类型"
    headers[headers.index("敏感级别")] = "敏感等级"
    spellings = {"VARCHAR": "C", "C 字符型": "C", "字符型(C)": "C", "integer": "I", "日期时间": "T", "n": "N"}
    blank = [None] * len(ENTRY_HEADERS)
    rows = [headers, entry_row(1, "车辆登记信息") + item_cells("号牌号码", "VARCHAR", 16, 敏感级别="一般2")]
    rows += [blank + item_cells(f"项{n}", spelling) for n, spelling in enumerate(spellings) if n]
    report = parse_workbook(xlsx(rows, title="省公安厅政务数据资源目录"))
    assert report.ok, report.errors
    entry = report.entries[0].entry
    assert entry.name == "车辆登记信息"
    assert entry.summary == "车辆登记信息的摘要"
    assert [i.data_type for i in entry.items] == list(spellings.values())
    assert entry.items[0].length == 16
    assert entry.items[0].sensitivity == "一般2"


def test_header_synonym_named_in_errors() -> None:
    headers = list(HEADERS)
    headers[headers.index("信息资源名称")] = "资源名称"
    rows = [headers, entry_row(1, None, 共享类型="部分共享") + item_cells("x")]
    report = parse_workbook(xlsx(rows))
    columns = {e.column for e in report.errors}
    assert "资源名称" in columns  # the column as the user wrote it
    assert "共享类型" in columns


def test_two_row_header_with_group_cell() -> None:
    top = [*ENTRY_HEADERS, "信息项"] + [None] * (len(ITEM_HEADERS) - 1)
    sub = [None] * len(ENTRY_HEADERS) + ITEM_HEADERS
    rows = [top, sub, entry_row(1, "医保结算信息") + item_cells("结算金额", "N", 18)]
    report = parse_workbook(xlsx(rows, title="省医保局目录"))
    assert report.ok, report.errors
    assert report.header_row == 3
    assert report.entries[0].row_from == 4
    assert report.entries[0].entry.items[0].name == "结算金额"


def test_sheet_selection() -> None:
    wb = Workbook()
    wb.active.title = "说明"
    wb["说明"].append(["本文件为目录编制模板"])
    ws = wb.create_sheet("目录")
    ws.append(HEADERS)
    ws.append(entry_row(1, "不动产登记信息", 信息资源分类码="103001") + item_cells("不动产单元号"))
    out = BytesIO()
    wb.save(out)
    content = out.getvalue()
    assert parse_workbook(content).entries[0].entry.name == "不动产登记信息"  # finds the sheet with a header
    assert parse_workbook(content, sheet="目录").sheet == "目录"
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(content, sheet="不存在")
    assert exc.value.code == "catalog.import.sheet_not_found"
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(content, sheet="说明")
    assert exc.value.code == "catalog.import.no_header"


# ---------------------------------------------------------------------------------------------- bad rows


def test_bad_rows_are_reported_and_good_entries_still_parsed() -> None:
    rows = [
        HEADERS,  # row 2 (title on row 1)
        entry_row(1, "企业登记信息") + item_cells("企业名称"),  # 3 good
        entry_row(1, "企业登记信息") + item_cells("住所"),  # 4 good
        entry_row(2, "失业登记信息", 共享类型="有条件") + item_cells("姓名"),  # 5 bad enum
        entry_row(3, None) + item_cells("职业"),  # 6 missing name
        entry_row(4, "就业困难人员信息", 共享类型="有条件共享") + item_cells("姓名"),  # 7 no condition
        entry_row(5, "职业资格证书信息") + item_cells("证书编号", "字母"),  # 8 bad data type
        entry_row(5, "职业资格证书信息") + item_cells("发证日期", "D", "八位"),  # 9 length not a number
        entry_row(6, "技能人才信息") + item_cells("姓名"),  # 10 good row …
        entry_row(6, "技能人才信息") + item_cells("姓名", "C", 30),  # 11 … duplicate item name
        entry_row(7, "社会保障卡信息", 共享类型="不予共享") + item_cells("卡号"),  # 12 no legal basis
        entry_row(8, "人才引进信息", 信息资源分类码="9x") + item_cells("姓名", "C", 0),  # 13 bad class, length 0
        entry_row(9, "劳动仲裁信息") + item_cells("案件编号"),  # 14 good
    ]
    report = parse_workbook(xlsx(rows, title="省人社厅政务数据资源目录"))
    assert not report.ok
    assert report.total_entries == 9
    assert [p.entry.name for p in report.entries] == ["企业登记信息", "劳动仲裁信息"]
    assert [(p.row_from, p.row_to) for p in report.entries] == [(3, 4), (14, 14)]

    by_row = errors_by_row(report)
    assert set(by_row) == {5, 6, 7, 8, 9, 11, 12, 13}
    assert by_row[5] == ["第 5 行「共享类型」：取值“有条件”不在可选范围（无条件共享、有条件共享、不予共享）"]
    assert by_row[6] == ["第 6 行「信息资源名称」：必须填写"]
    assert by_row[7] == ["第 7 行「共享条件」：有条件共享的目录必须填写共享条件"]
    assert len(by_row[8]) == 1 and by_row[8][0].startswith("第 8 行「数据类型」：取值“字母”不是有效的数据类型")
    assert by_row[9] == ["第 9 行「数据长度」：取值“八位”不是整数"]
    assert by_row[11] == ["第 11 行「信息项名称」：信息项名称“姓名”与第 10 行重复"]
    assert by_row[12] == ["第 12 行「不予共享依据」：不予共享的目录必须提供法律、行政法规或党中央、国务院政策依据"]
    assert len(by_row[13]) == 2
    assert by_row[13][0].startswith("第 13 行「信息资源分类码」：取值“9x”不是有效的分类码")
    assert by_row[13][1] == "第 13 行「数据长度」：取值 0 不能小于 1"
    for error in report.errors:
        assert error.message == f"第 {error.row} 行「{error.column}」：{error.reason}"


def test_entry_without_items_and_item_without_name() -> None:
    rows = [
        HEADERS,
        entry_row(1, "空目录") + item_cells(None, None, None),
        entry_row(2, "缺名称的信息项") + item_cells(None, "C", 10),
    ]
    by_row = errors_by_row(parse_workbook(xlsx(rows)))
    assert by_row[2] == ["第 2 行「信息项名称」：至少需要一个信息项"]
    assert by_row[3] == ["第 3 行「信息项名称」：必须填写"]


def test_inconsistent_repeated_value_rejects_the_entry() -> None:
    rows = [
        HEADERS,
        entry_row(1, "企业年报信息", 更新周期="每年") + item_cells("年报年度"),
        entry_row(1, "企业年报信息", 更新周期="每月") + item_cells("从业人数", "I", 8),
    ]
    report = parse_workbook(xlsx(rows))
    assert report.entries == []
    assert [e.message for e in report.errors] == [
        "第 3 行「更新周期」：同一目录各行的取值应一致：本行为“每月”，第 2 行为“每年”"
    ]


def test_entry_codes_checked() -> None:
    rows = [
        HEADERS,
        entry_row(1, "甲", 信息资源代码="102001/000001") + item_cells("a"),
        entry_row(2, "乙", 信息资源代码="102001/000001") + item_cells("a"),
        entry_row(3, "丙", 信息资源代码="不是代码") + item_cells("a"),
    ]
    report = parse_workbook(xlsx(rows))
    assert [p.entry.name for p in report.entries] == ["甲"]
    by_row = errors_by_row(report)
    assert by_row[3] == ["第 3 行「信息资源代码」：信息资源代码“102001/000001”与第 2 行的目录重复"]
    assert "格式不正确" in by_row[4][0]


def test_overlong_text_and_tag() -> None:
    rows = [HEADERS, entry_row(1, "长" * 201, 标签="短、" + "签" * 41) + item_cells("a")]
    by_row = errors_by_row(parse_workbook(xlsx(rows)))
    assert by_row[2][0] == "第 2 行「信息资源名称」：内容过长：最多 200 个字符，实际 201 个"
    assert by_row[2][1].startswith("第 2 行「标签」：第 2 项“" + "签" * 41 + "”内容过长：最多 40 个字符")


# --------------------------------------------------------------------------------------- structural errors


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not an excel file at all",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512,  # legacy .xls
        b"PK\x03\x04" + b"\0" * 100,  # a broken zip
    ],
    ids=["empty", "text", "xls", "broken-zip"],
)
def test_bad_file(content: bytes) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(content)
    assert exc.value.code == "catalog.import.bad_file"
    assert exc.value.status == 422


def test_truncated_and_non_excel_zip() -> None:
    good = template_workbook()
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(good[: len(good) // 2])
    assert exc.value.code == "catalog.import.bad_file"
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("hello.txt", "你好")
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(out.getvalue())
    assert exc.value.code == "catalog.import.bad_file"

    # A well-formed package whose sheet XML is damaged: only noticed while reading the rows.
    damaged = BytesIO()
    with zipfile.ZipFile(BytesIO(good)) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            dst.writestr(info, data)
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(damaged.getvalue())
    assert exc.value.code == "catalog.import.bad_file"


def test_missing_required_columns_and_no_header() -> None:
    headers = [h for h in HEADERS if h not in ("摘要", "数据类型")]
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(xlsx([headers]))
    assert exc.value.code == "catalog.import.missing_columns"
    assert {e.field for e in exc.value.errors} == {"摘要", "数据类型"}

    rows = [["无关", "表格"]] * 12 + [HEADERS]  # header below the first 10 rows is not found
    with pytest.raises(ValidationFailed) as exc:
        parse_workbook(xlsx(rows))
    assert exc.value.code == "catalog.import.no_header"


# ------------------------------------------------------------------------------------------------ export


def read_dict(entry: EntryIn, code: str | None = None, provider: str = "省大数据中心") -> dict[str, Any]:
    data = entry.model_dump()
    data["code"] = code
    data["provider_name"] = provider
    data["items"] = [{**item, "id": f"i{n}", "position": n} for n, item in enumerate(data["items"])]
    return data


EXAMPLES = [
    EntryIn(
        name="企业登记信息",
        class_code="102001",
        summary="=SUM(A1:A2) 开头的文本不应成为公式",
        resource_format=ResourceFormat.DATABASE,
        sharing_type=SharingType.CONDITIONAL,
        sharing_condition="依法履职需要",
        opening_type=OpeningType.CONDITIONAL,
        opening_condition="实名申请",
        update_cycle=UpdateCycle.DAILY,
        tags=["企业", "登记"],
        related_codes=["102001/000002"],
        duty_basis="三定方案",
        items=[
            {"name": "企业名称", "data_type": DataType.C, "length": 200, "column_name": "qymc"},
            {"name": "注册资本", "data_type": DataType.Y, "sharing_type": SharingType.NOT_SHARED},
            {"name": "成立日期", "data_type": DataType.D, "sensitivity": "一般4", "description": "年月日"},
        ],
    ),
    EntryIn(
        name="公积金缴存信息",
        class_code="203001001",
        summary="缴存情况",
        resource_format=ResourceFormat.API,
        format_detail="JSON",
        sharing_type=SharingType.NOT_SHARED,
        not_shared_basis="《住房公积金管理条例》",
        sharing_way=SharingWay.TABLE,
        update_cycle=UpdateCycle.MONTHLY,
        level=EntryLevel.LOCAL,
        items=[{"name": "缴存基数", "data_type": DataType.N, "opening_type": OpeningType.NOT_OPEN}],
    ),
    EntryIn(
        name="企业登记信息",  # same name as the first entry: the 序号 keeps them apart
        class_code="301001",
        summary="同名目录",
        resource_format=ResourceFormat.SPREADSHEET,
        sharing_type=SharingType.UNCONDITIONAL,
        update_cycle=UpdateCycle.IRREGULAR,
        items=[{"name": "甲", "data_type": DataType.I}, {"name": "乙", "data_type": DataType.B}],
    ),
]


@pytest.mark.parametrize("layout", ["merged", "repeated"])
def test_round_trip_examples(layout: str) -> None:
    data = [read_dict(e, code=f"102001/00000{n}" if n else None) for n, e in enumerate(EXAMPLES)]
    report = parse_workbook(export_workbook(data, layout=layout))
    assert report.ok, report.errors
    assert [p.entry.model_dump() for p in report.entries] == [e.model_dump() for e in EXAMPLES]
    assert [p.code for p in report.entries] == [None, "102001/000001", "102001/000002"]
    assert [p.provider_name for p in report.entries] == ["省大数据中心"] * 3
    assert [(p.row_from, p.row_to) for p in report.entries] == [(3, 5), (6, 6), (7, 8)]


def test_export_layout_and_styles() -> None:
    content = export_workbook([read_dict(e) for e in EXAMPLES])
    wb = load_workbook(BytesIO(content))
    assert wb.sheetnames == [MAIN_SHEET, GUIDE_SHEET]
    ws = wb[MAIN_SHEET]
    assert ws["A1"].value == "省大数据中心政务数据资源目录"
    assert "A1:" in " ".join(str(r) for r in ws.merged_cells.ranges)
    headers = [c.value for c in ws[2]]
    assert headers == [c.header for c in COLUMNS]
    assert all(c.font.bold for c in ws[2])
    assert ws["A2"].fill.fgColor.rgb.endswith("DDEBF7")
    assert ws.freeze_panes == "C3"
    name_col = headers.index("信息资源名称") + 1
    assert ws.column_dimensions["B"].width == COLUMNS[name_col - 1].width
    merged = {str(r) for r in ws.merged_cells.ranges}
    assert {"A3:A5", "B3:B5", "A7:A8"} <= merged
    assert not any(r.startswith("T3") for r in merged)  # item columns are never merged
    # The summary starting with "=" is stored as text, not as a formula.
    summary = ws.cell(row=3, column=headers.index("摘要") + 1)
    assert summary.data_type == "s" and summary.value.startswith("=SUM")
    assert ws.cell(row=3, column=headers.index("数据类型") + 1).value == DATA_TYPE_LABELS["C"]

    lists = {}
    for dv in ws.data_validations.dataValidation:
        letter = str(dv.sqref).split(":")[0].rstrip("0123456789")
        lists[headers[ord(letter[-1]) - ord("A") + 26 * (len(letter) - 1)]] = dv
    assert lists["共享类型"].formula1 == '"无条件共享,有条件共享,不予共享"'
    assert lists["敏感级别"].formula1 == '"' + ",".join(SENSITIVITY_ORDER) + '"'
    assert lists["更新周期"].formula1.strip('"').split(",") == [u.value for u in UpdateCycle]
    assert lists["数据长度"].type == "whole"
    assert "信息资源名称" not in lists

    guide = wb[GUIDE_SHEET]
    text = "\n".join(str(c.value) for row in guide.iter_rows() for c in row if c.value)
    for col in COLUMNS:
        assert col.header in text
    assert "无条件共享、有条件共享、不予共享" in text
    assert "法人单位" in text


def test_template_workbook_has_one_valid_example() -> None:
    report = parse_workbook(template_workbook())
    assert report.ok, report.errors
    assert report.total_entries == 1
    entry = report.entries[0].entry
    assert entry.name == "企业登记信息"
    assert len(entry.items) >= 2


# ---------------------------------------------------------------------------------------- property test

TEXT = "政务数据资源目录企业登记人口信息社保医疗abcXYZ019=-_（）() "
texts = st.text(TEXT, min_size=1, max_size=30).map(str.strip).filter(bool)
optional_text = st.one_of(st.just(""), texts)


@st.composite
def entries(draw: st.DrawFn) -> EntryIn:
    sharing = draw(st.sampled_from(list(SharingType)))
    opening = draw(st.sampled_from(list(OpeningType)))
    n_items = draw(st.integers(1, 4))
    names = draw(st.lists(texts, min_size=n_items, max_size=n_items, unique=True))
    items = [
        {
            "name": name,
            "column_name": draw(st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True))),
            "data_type": draw(st.sampled_from(list(DataType))),
            "length": draw(st.one_of(st.none(), st.integers(1, 10_000_000))),
            "description": draw(optional_text),
            "sharing_type": draw(st.one_of(st.none(), st.sampled_from(list(SharingType)))),
            "opening_type": draw(st.one_of(st.none(), st.sampled_from(list(OpeningType)))),
            "sensitivity": draw(st.sampled_from(SENSITIVITY_ORDER)),
        }
        for name in names
    ]
    return EntryIn(
        name=draw(texts),
        class_code=draw(st.from_regex(r"[1-3][0-9]{5}[0-9]{0,4}", fullmatch=True)),
        summary=draw(texts),
        resource_format=draw(st.sampled_from(list(ResourceFormat))),
        format_detail=draw(optional_text),
        sharing_type=sharing,
        sharing_condition=draw(texts) if sharing == SharingType.CONDITIONAL else draw(optional_text),
        not_shared_basis=draw(texts) if sharing == SharingType.NOT_SHARED else draw(optional_text),
        sharing_way=draw(st.sampled_from(list(SharingWay))),
        opening_type=opening,
        opening_condition=draw(texts) if opening == OpeningType.CONDITIONAL else draw(optional_text),
        update_cycle=draw(st.sampled_from(list(UpdateCycle))),
        level=draw(st.sampled_from(list(EntryLevel))),
        tags=draw(st.lists(texts, max_size=3)),
        related_codes=draw(st.lists(st.from_regex(r"[1-3][0-9]{5}/[0-9]{6}", fullmatch=True), max_size=2)),
        duty_basis=draw(optional_text),
        items=items,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(entries(), min_size=1, max_size=4),
    layout=st.sampled_from(["merged", "repeated"]),
    with_codes=st.booleans(),
)
def test_round_trip_property(data: list[EntryIn], layout: str, with_codes: bool) -> None:
    codes = [f"{e.class_code}/{n:06d}" if with_codes else None for n, e in enumerate(data)]
    exported = export_workbook([read_dict(e, code) for e, code in zip(data, codes, strict=True)], layout=layout)
    report = parse_workbook(exported)
    assert report.ok, report.errors
    assert [p.entry.model_dump() for p in report.entries] == [e.model_dump() for e in data]
    assert [p.code for p in report.entries] == codes
