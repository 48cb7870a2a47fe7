"""Excel import and export of catalog entries in the template departments fill in (政务数据资源目录编制模板).

One row per data item (信息项). The entry's own fields are either repeated on every row of the entry or
written once, in merged cells spanning the entry's rows (or only on its first row). Import turns a workbook
into ``EntryIn`` objects plus a list of row errors in Chinese; export writes the same template back, with
drop-down lists for the enumerated columns and a "填写说明" sheet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from io import BytesIO
from typing import Any, Literal

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.cell_range import CellRange, MultiCellRange
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.merge import MergedCellRange
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse
from pydantic import BaseModel, ValidationError

from zhengshu.catalog.enums import (
    DATA_TYPE_LABELS,
    RESOURCE_CLASSES,
    SENSITIVITY_ORDER,
    EntryLevel,
    OpeningType,
    ResourceFormat,
    SharingType,
    SharingWay,
    UpdateCycle,
)
from zhengshu.catalog.schemas import DataItemIn, EntryBase, EntryIn
from zhengshu.core.errors import FieldError, ValidationFailed

__all__ = [
    "COLUMNS",
    "GUIDE_SHEET",
    "MAIN_SHEET",
    "ImportReport",
    "ParsedEntry",
    "RowError",
    "export_workbook",
    "parse_workbook",
    "template_workbook",
]

MAIN_SHEET = "政务数据资源目录"
GUIDE_SHEET = "填写说明"
HEADER_SCAN_ROWS = 10
MAX_ROWS = 50_000  # a province-wide export is a few thousand rows; more is a mistake or a hostile file
LIST_SEPARATORS = re.compile(r"[、,，;；\n]+")
CODE_SEPARATORS = re.compile(r"[、,，;；\s]+")
ENTRY_CODE_PATTERN = re.compile(r"^[1-3]\d{5}\d*/[0-9A-Za-z]+$")

Scope = Literal["meta", "entry", "item"]


@dataclass(frozen=True)
class Column:
    """One template column: where it goes in the schema, what people may call it, what it accepts."""

    key: str
    header: str
    scope: Scope
    field: str
    width: int
    synonyms: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    required: bool = False
    help: str = ""


def _values(enum: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(v.value) for v in enum)


COLUMNS: tuple[Column, ...] = (
    Column("seq", "序号", "meta", "seq", 6, ("顺序号", "目录序号"), help="目录的顺序号；同一目录的各行序号相同。"),
    Column(
        "name",
        "信息资源名称",
        "entry",
        "name",
        22,
        ("目录名称", "资源名称", "数据资源名称", "政务数据资源名称", "信息资源目录名称"),
        required=True,
        help="目录名称。填写新的名称即开始一条新目录；同一目录的其余行可重复填写、留空或合并单元格。",
    ),
    Column(
        "code",
        "信息资源代码",
        "meta",
        "code",
        18,
        ("资源代码", "目录代码", "目录编码", "资源编码", "信息资源编码"),
        help="已发布目录的代码（分类码/顺序码）。新编目录留空；填写时表示更新该目录。",
    ),
    Column(
        "provider_name",
        "提供方",
        "meta",
        "provider_name",
        16,
        ("信息资源提供方", "资源提供方", "提供部门", "提供单位", "数源部门"),
        help="提供目录的单位。导入时以当前账号所在部门为准，此列仅供核对。",
    ),
    Column(
        "class_code",
        "信息资源分类码",
        "entry",
        "class_code",
        14,
        ("分类码", "资源分类码", "目录分类码", "信息资源分类代码", "分类代码", "信息资源分类"),
        required=True,
        help="类1位 + 项2位 + 目3位 + 细目（可选），全部为数字，如 102001。类、项见下方分类表。",
    ),
    Column(
        "summary",
        "摘要",
        "entry",
        "summary",
        30,
        ("信息资源摘要", "资源摘要", "内容摘要", "资源描述", "目录摘要"),
        required=True,
        help="概述资源内容、覆盖范围和用途。",
    ),
    Column(
        "resource_format",
        "资源格式",
        "entry",
        "resource_format",
        12,
        ("信息资源格式", "格式分类", "格式类型", "资源格式分类"),
        _values(ResourceFormat),
        required=True,
    ),
    Column(
        "format_detail",
        "格式细类",
        "entry",
        "format_detail",
        10,
        ("资源格式细类", "格式细分", "具体格式"),
        help="如 XLSX、OFD、MySQL。",
    ),
    Column(
        "sharing_type",
        "共享类型",
        "entry",
        "sharing_type",
        12,
        ("共享属性", "信息资源共享类型", "资源共享类型"),
        _values(SharingType),
        required=True,
    ),
    Column(
        "sharing_condition",
        "共享条件",
        "entry",
        "sharing_condition",
        20,
        ("信息资源共享条件",),
        help="有条件共享必填；只能写法律法规规定的条件。",
    ),
    Column(
        "not_shared_basis",
        "不予共享依据",
        "entry",
        "not_shared_basis",
        20,
        ("不共享依据", "不予共享理由", "不予共享的依据"),
        help="不予共享必填：法律、行政法规或党中央、国务院政策依据。",
    ),
    Column(
        "sharing_way",
        "共享方式",
        "entry",
        "sharing_way",
        10,
        ("共享方式分类", "共享方式类型"),
        _values(SharingWay),
        help="留空为“接口”。",
    ),
    Column(
        "opening_type",
        "开放类型",
        "entry",
        "opening_type",
        12,
        ("开放属性", "是否向社会开放", "向社会开放属性"),
        _values(OpeningType),
        help="留空为“不予开放”。",
    ),
    Column(
        "opening_condition",
        "开放条件",
        "entry",
        "opening_condition",
        20,
        ("向社会开放条件",),
        help="有条件开放必填。",
    ),
    Column(
        "update_cycle",
        "更新周期",
        "entry",
        "update_cycle",
        10,
        ("更新频率", "更新频度"),
        _values(UpdateCycle),
        required=True,
    ),
    Column(
        "level",
        "层级",
        "entry",
        "level",
        8,
        ("目录层级", "资源层级"),
        _values(EntryLevel),
        help="留空为“部门”。",
    ),
    Column(
        "tags",
        "标签",
        "entry",
        "tags",
        16,
        ("资源标签", "关键词", "关键字"),
        help="多个标签用顿号、逗号或分号分隔，每个不超过 40 个字符。",
    ),
    Column(
        "related_codes",
        "关联资源代码",
        "entry",
        "related_codes",
        18,
        ("关联目录代码", "关联资源", "关联信息资源代码"),
        help="多个代码用顿号、逗号或分号分隔。",
    ),
    Column(
        "duty_basis",
        "职责依据",
        "entry",
        "duty_basis",
        20,
        ("职能依据", "履职依据", "法定依据"),
        help="三定方案或法规条款。",
    ),
    Column(
        "item_name",
        "信息项名称",
        "item",
        "name",
        16,
        ("数据项名称", "信息项中文名称", "字段中文名", "字段中文名称", "中文名称"),
        required=True,
        help="每行一个信息项；同一目录内不得重复。",
    ),
    Column(
        "item_column_name",
        "字段名",
        "item",
        "column_name",
        16,
        ("字段英文名", "字段英文名称", "英文名称", "字段代码", "英文字段名"),
        help="挂接表中的字段名（英文），可留空。",
    ),
    Column(
        "item_data_type",
        "数据类型",
        "item",
        "data_type",
        10,
        ("信息项数据类型", "数据项类型", "字段类型"),
        tuple(DATA_TYPE_LABELS.values()),
        required=True,
        help="填写代码（C、N、Y、D、T、L、M、G、B、I、F）或名称（如“字符型”）。",
    ),
    Column(
        "item_length",
        "数据长度",
        "item",
        "length",
        8,
        ("长度", "字段长度", "信息项长度"),
        help="字节数，正整数，可留空。",
    ),
    Column(
        "item_description",
        "信息项描述",
        "item",
        "description",
        24,
        ("数据项描述", "字段描述", "字段说明", "信息项说明"),
    ),
    Column(
        "item_sharing_type",
        "信息项共享类型",
        "item",
        "sharing_type",
        12,
        ("信息项共享属性", "数据项共享类型", "字段共享类型"),
        _values(SharingType),
        help="留空时沿用目录的共享类型。",
    ),
    Column(
        "item_opening_type",
        "信息项开放类型",
        "item",
        "opening_type",
        12,
        ("信息项开放属性", "数据项开放类型", "字段开放类型"),
        _values(OpeningType),
        help="留空时沿用目录的开放类型。",
    ),
    Column(
        "item_sensitivity",
        "敏感级别",
        "item",
        "sensitivity",
        10,
        ("敏感等级", "安全级别", "数据分级", "分级", "数据级别", "敏感程度"),
        tuple(SENSITIVITY_ORDER),
        help="留空为“一般1”。就高从严：拿不准时选较高级别。",
    ),
)

_BY_KEY = {c.key: c for c in COLUMNS}
_ENTRY_COLUMNS = [c for c in COLUMNS if c.scope != "item"]
_ITEM_COLUMNS = [c for c in COLUMNS if c.scope == "item"]
_ENTRY_FIELD_COLUMNS = {c.field: c for c in COLUMNS if c.scope == "entry"}
_ITEM_FIELD_COLUMNS = {c.field: c for c in COLUMNS if c.scope == "item"}

# Accepted spellings of data types: code, label, label without 型, and the usual database type names.
_DATA_TYPE_ALIASES: dict[str, str] = {}
for _code, _label in DATA_TYPE_LABELS.items():
    _DATA_TYPE_ALIASES[_code] = _code
    _DATA_TYPE_ALIASES[_label] = _code
    _DATA_TYPE_ALIASES[_label.removesuffix("型")] = _code
    _DATA_TYPE_ALIASES[f"{_code}{_label}"] = _code
_DATA_TYPE_ALIASES.update(
    {
        "字符串": "C",
        "文本": "C",
        "整数": "I",
        "整数型": "I",
        "数字": "N",
        "日期时间": "T",
        "布尔": "L",
        "布尔型": "L",
        "二进制": "G",
        "VARCHAR": "C",
        "VARCHAR2": "C",
        "CHAR": "C",
        "STRING": "C",
        "NUMBER": "N",
        "NUMERIC": "N",
        "DECIMAL": "N",
        "MONEY": "Y",
        "DATE": "D",
        "DATETIME": "T",
        "TIMESTAMP": "T",
        "BOOLEAN": "L",
        "BOOL": "L",
        "TEXT": "M",
        "CLOB": "M",
        "BLOB": "G",
        "BINARY": "G",
        "DOUBLE": "B",
        "INT": "I",
        "INTEGER": "I",
        "BIGINT": "I",
        "FLOAT": "F",
        "REAL": "F",
    }
)


def _text(value: Any) -> str:
    """A cell value as the text a person typed (numbers without a spurious .0, dates as ISO)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


_HEADER_NOISE = re.compile(r"[（(【\[][^）)】\]]*[）)】\]]|[\s*＊:：]")


def _norm_header(value: Any) -> str:
    return _HEADER_NOISE.sub("", _text(value))


_HEADER_LOOKUP: dict[str, str] = {}
for _col in COLUMNS:
    for _name in (_col.header, *_col.synonyms):
        _HEADER_LOOKUP.setdefault(_norm_header(_name), _col.key)


# --------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RowError:
    """One problem found in the file. ``message`` is the full sentence shown to the user."""

    row: int
    column: str
    message: str
    reason: str = ""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ParsedEntry:
    row_from: int
    row_to: int
    code: str | None
    entry: EntryIn
    provider_name: str | None = None


@dataclass
class ImportReport:
    entries: list[ParsedEntry]
    errors: list[RowError]
    total_entries: int
    sheet: str = ""
    header_row: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def failed_entries(self) -> int:
        return self.total_entries - len(self.entries)


# --------------------------------------------------------------------------------------------------- import


@dataclass
class _Layout:
    sheet: str
    header_row: int  # the last header row (1-based)
    first_data_row: int
    columns: dict[str, tuple[int, str]]  # key -> (0-based column index, header text as written)

    def label(self, key: str) -> str:
        return self.columns[key][1] if key in self.columns else _BY_KEY[key].header


@dataclass
class _Block:
    """The rows of one entry in the file."""

    rows: list[int] = field(default_factory=list)
    values: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (text, row it came from)


_BAD_FILE = "文件无法读取：不是有效的 .xlsx 文件或文件已损坏，请上传目录编制模板"


def _load(content: bytes) -> Any:
    if not content:
        raise ValidationFailed("上传的文件是空的，请上传 .xlsx 格式的目录编制模板", code="catalog.import.bad_file")
    if content[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise ValidationFailed(
            "不支持旧版 .xls 文件，请在 Excel 或 WPS 中另存为 .xlsx 后再导入", code="catalog.import.bad_file"
        )
    try:
        # Read-only mode streams rows; the normal mode binds every merged range at a quadratic cost
        # (minutes for a few thousand rows), so merged ranges are read from the sheet XML instead.
        return load_workbook(BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML, key and value errors alike for a damaged file
        raise ValidationFailed(_BAD_FILE, code="catalog.import.bad_file") from exc


def _merged_ranges(wb: Any, ws: Any) -> list[CellRange]:
    """The sheet's <mergeCell ref="..."/> elements (read-only worksheets do not expose them)."""
    path = getattr(ws, "_worksheet_path", None)
    archive = getattr(wb, "_archive", None)
    if path is None or archive is None:  # pragma: no cover - guards against openpyxl internals changing
        return []
    ranges: list[CellRange] = []
    merge_tag, row_tag = f"{{{SHEET_MAIN_NS}}}mergeCell", f"{{{SHEET_MAIN_NS}}}row"
    with archive.open(path) as src:
        for _, element in iterparse(src):
            if element.tag == merge_tag and element.get("ref"):
                ranges.append(CellRange(element.get("ref")))
            elif element.tag == row_tag:
                element.clear()  # keep memory flat on large sheets
    return ranges


def _read_grid(wb: Any, ws: Any) -> tuple[list[list[Any]], set[tuple[int, int]]]:
    """All cell values (0-based) with merged ranges filled in, plus the cells that only continue a merge."""
    ws.reset_dimensions()  # some producers write a wrong <dimension>; read what is really there
    grid: list[list[Any]] = []
    for values in ws.iter_rows(values_only=True):
        grid.append(list(values))
        if len(grid) > MAX_ROWS:
            raise ValidationFailed(
                f"文件行数过多，一次最多导入 {MAX_ROWS:,} 行，请拆分后导入", code="catalog.import.too_large"
            )
    while grid and all(v is None for v in grid[-1]):
        grid.pop()
    width = max((len(r) for r in grid), default=0)
    for r in grid:
        r.extend([None] * (width - len(r)))
    continued: set[tuple[int, int]] = set()
    for rng in _merged_ranges(wb, ws):
        top_r, top_c = rng.min_row - 1, rng.min_col - 1
        if top_r >= len(grid) or top_c >= width:
            continue
        value = grid[top_r][top_c]
        for r in range(top_r, min(rng.max_row, len(grid))):
            for c in range(top_c, min(rng.max_col, width)):
                if (r, c) != (top_r, top_c):
                    grid[r][c] = value
                    continued.add((r, c))
    return grid, continued


def _recognize(row: Sequence[Any]) -> dict[int, str]:
    return {i: _HEADER_LOOKUP[h] for i, v in enumerate(row) if (h := _norm_header(v)) in _HEADER_LOOKUP}


def _combine(upper: Sequence[Any], lower: Sequence[Any]) -> dict[str, tuple[int, str]]:
    """Column keys of a one- or two-row header; the lower (more specific) row wins where it is recognized."""
    up, low = _recognize(upper), _recognize(lower)
    columns: dict[str, tuple[int, str]] = {}
    for i in range(max(len(upper), len(lower))):
        if i in low:
            key, raw = low[i], lower[i]
        elif i in up:
            key, raw = up[i], upper[i]
        else:
            continue
        columns.setdefault(key, (i, _text(raw).replace("\n", "")))
    return columns


def _find_header(grid: list[list[Any]], sheet: str) -> _Layout | None:
    scan = grid[:HEADER_SCAN_ROWS]
    if not scan:
        return None
    best = max(range(len(scan)), key=lambda i: len(set(_recognize(scan[i]).values())))
    single = _combine(scan[best], scan[best])
    if ("name" not in single and "item_name" not in single) or len(single) < 3:
        return None
    layout = _Layout(sheet, best + 1, best + 2, single)
    # Many templates put a group header ("信息项") above the item columns: merge the neighbouring row in.
    if best + 1 < len(grid):
        below = _combine(grid[best], grid[best + 1])
        if len(below) > len(single) + 1:  # a data row may by chance hold one header-like word
            return _Layout(sheet, best + 2, best + 3, below)
    if best > 0:
        above = _combine(grid[best - 1], grid[best])
        if len(above) > len(single) + 1:
            layout.columns = above
    return layout


def _locate(wb: Any, sheet: str | None) -> tuple[Any, _Layout]:
    if sheet is not None:
        if sheet not in wb.sheetnames:
            raise ValidationFailed(
                f"文件中没有名为“{sheet}”的工作表（现有：{'、'.join(wb.sheetnames)}）",
                code="catalog.import.sheet_not_found",
            )
        candidates = [wb[sheet]]
    else:
        candidates = [ws for ws in wb.worksheets if ws.title != GUIDE_SHEET]
    for ws in candidates:
        head = [list(r) for r in ws.iter_rows(max_row=HEADER_SCAN_ROWS + 1, values_only=True)]
        layout = _find_header(head, ws.title)
        if layout is not None:
            return ws, layout
    raise ValidationFailed(
        "未找到表头：前 10 行中应有“信息资源名称”“信息项名称”等列名，请使用目录编制模板",
        code="catalog.import.no_header",
    )


def _check_columns(layout: _Layout) -> None:
    missing = [c for c in COLUMNS if c.required and c.key not in layout.columns]
    if missing:
        raise ValidationFailed(
            f"表头缺少必填列：{'、'.join(c.header for c in missing)}",
            code="catalog.import.missing_columns",
            errors=[FieldError(c.header, f"缺少“{c.header}”列") for c in missing],
        )


class _Sheet:
    """Read access to the data rows by column key."""

    def __init__(self, grid: list[list[Any]], continued: set[tuple[int, int]], layout: _Layout) -> None:
        self.grid, self.continued, self.layout = grid, continued, layout

    def raw(self, row: int, key: str) -> Any:
        col = self.layout.columns.get(key)
        return None if col is None else self.grid[row - 1][col[0]]

    def text(self, row: int, key: str) -> str:
        return _text(self.raw(row, key))

    def is_continued(self, row: int, key: str) -> bool:
        col = self.layout.columns.get(key)
        return col is not None and (row - 1, col[0]) in self.continued

    def blank(self, row: int) -> bool:
        return all(_text(self.raw(row, k)) == "" for k in self.layout.columns)


def _group(sheet: _Sheet, errors: list[RowError]) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    for row in range(sheet.layout.first_data_row, len(sheet.grid) + 1):
        if sheet.blank(row):
            continue
        name, seq, code = sheet.text(row, "name"), sheet.text(row, "seq"), sheet.text(row, "code")
        if current is None or sheet.is_continued(row, "name"):
            starts = current is None
        else:
            cur_name = current.values.get("name", ("", 0))[0]
            cur_seq = current.values.get("seq", ("", 0))[0]
            cur_code = current.values.get("code", ("", 0))[0]
            other_seq = bool(seq and cur_seq and seq != cur_seq)
            other_code = bool(code and cur_code and code != cur_code)
            starts = (bool(name) and name != cur_name) or other_seq or other_code
        if starts:
            current = _Block()
            blocks.append(current)
        assert current is not None
        current.rows.append(row)
        for col in _ENTRY_COLUMNS:
            value = sheet.text(row, col.key)
            if not value:
                continue
            seen = current.values.get(col.key)
            if seen is None:
                current.values[col.key] = (value, row)
            elif seen[0] != value:
                _add(
                    errors,
                    row,
                    sheet.layout.label(col.key),
                    f"同一目录各行的取值应一致：本行为“{value}”，第 {seen[1]} 行为“{seen[0]}”",
                )
    return blocks


def _add(errors: list[RowError], row: int, column: str, reason: str) -> None:
    errors.append(RowError(row, column, f"第 {row} 行「{column}」：{reason}", reason))


def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [p.strip() for p in pattern.split(text) if p.strip()]


def _length(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    text = _text(value).removesuffix("字节").strip()
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text))
    return text


def _entry_data(block: _Block) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for col in COLUMNS:
        if col.scope != "entry" or col.key not in block.values:
            continue
        text = block.values[col.key][0]
        if col.field == "tags":
            data["tags"] = _split(text, LIST_SEPARATORS)
        elif col.field == "related_codes":
            data["related_codes"] = _split(text, CODE_SEPARATORS)
        else:
            data[col.field] = text
    return data


def _item_data(sheet: _Sheet, row: int) -> dict[str, Any] | None:
    data: dict[str, Any] = {}
    for col in _ITEM_COLUMNS:
        raw = sheet.raw(row, col.key)
        if col.field == "length":
            value = _length(raw)
            if value is not None and value != "":
                data["length"] = value
            continue
        text = _text(raw)
        if not text:
            continue
        if col.field == "data_type":
            key = re.sub(r"[\s\-－:：（）()]", "", text).upper()  # "C 字符型", "字符型(C)", "varchar"
            text = _DATA_TYPE_ALIASES.get(key) or _DATA_TYPE_ALIASES.get(key[-1:] + key[:-1], text)
        data[col.field] = text
    return data or None


def _reason(err: Mapping[str, Any], col: Column | None) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    shown = _text(value) if not isinstance(value, dict | list) else ""
    if kind == "missing":
        return "必须填写"
    if kind == "string_too_short":
        return "必须填写" if ctx.get("min_length") == 1 else f"至少需要 {ctx.get('min_length')} 个字符"
    if kind == "too_short":
        return "至少需要一个信息项" if col is not None and col.key == "item_name" else "至少需要填写一项"
    if kind == "string_too_long":
        return f"内容过长：最多 {ctx.get('max_length')} 个字符，实际 {len(shown)} 个"
    if kind in ("enum", "literal_error"):
        if col is not None and col.key == "item_data_type":
            allowed = "、".join(f"{c} {label}" for c, label in DATA_TYPE_LABELS.items())
            return f"取值“{shown}”不是有效的数据类型（可填代码或名称：{allowed}）"
        allowed = "、".join(col.choices) if col is not None and col.choices else str(ctx.get("expected", ""))
        return f"取值“{shown}”不在可选范围（{allowed}）"
    if kind == "string_pattern_mismatch":
        if col is not None and col.key == "class_code":
            return f"取值“{shown}”不是有效的分类码（类1位 + 项2位 + 目3位 + 细目，全部为数字，如 102001）"
        return f"取值“{shown}”格式不正确"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"取值“{shown}”不是整数"
    if kind == "greater_than_equal":
        return f"取值 {shown} 不能小于 {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"取值 {shown} 不能大于 {ctx.get('le')}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "string_type":
        return f"取值“{shown}”应为文本"
    if kind == "list_type":
        return "应为列表"
    return f"取值“{shown}”无效（{err['msg']}）"


# Model-level checks of EntryBase carry no field location: place them by what the message is about.
_MODEL_ERROR_COLUMNS = (
    ("共享条件", "sharing_condition"),
    ("不予共享", "not_shared_basis"),
    ("开放条件", "opening_condition"),
)


def _model_error_column(message: str) -> str:
    for word, key in _MODEL_ERROR_COLUMNS:
        if word in message:
            return key
    return "name"


def _validate_entry_fields(sheet: _Sheet, block: _Block, data: dict[str, Any], errors: list[RowError]) -> None:
    try:
        EntryBase.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            if loc and isinstance(loc[0], str) and loc[0] in _ENTRY_FIELD_COLUMNS:
                col = _ENTRY_FIELD_COLUMNS[loc[0]]
            else:
                col = _BY_KEY[_model_error_column(str(err["msg"]))]
            reason = _reason(err, col)
            if col.field in ("tags", "related_codes") and len(loc) > 1 and isinstance(loc[1], int):
                reason = f"第 {loc[1] + 1} 项“{_text(err.get('input'))}”{reason}"
            row = block.values.get(col.key, ("", block.rows[0]))[1]
            _add(errors, row, sheet.layout.label(col.key), reason)


def _parse_block(sheet: _Sheet, block: _Block, codes: dict[str, int]) -> tuple[ParsedEntry | None, list[RowError]]:
    errors: list[RowError] = []
    label = sheet.layout.label
    first = block.rows[0]
    data = _entry_data(block)
    _validate_entry_fields(sheet, block, data, errors)

    code = block.values.get("code", ("", first))[0] or None
    if code is not None:
        if not ENTRY_CODE_PATTERN.fullmatch(code):
            reason = f"取值“{code}”格式不正确，应为“分类码/顺序码”，如 102001/000001"
            _add(errors, first, label("code"), reason)
        elif code in codes:
            _add(errors, first, label("code"), f"信息资源代码“{code}”与第 {codes[code]} 行的目录重复")
        else:
            codes[code] = first

    items: list[dict[str, Any]] = []
    item_rows: dict[str, int] = {}
    for row in block.rows:
        item = _item_data(sheet, row)
        if item is None:
            continue
        try:
            DataItemIn.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = err["loc"]
                col = _ITEM_FIELD_COLUMNS.get(loc[0]) if loc and isinstance(loc[0], str) else None
                col = col or _BY_KEY["item_name"]
                _add(errors, row, label(col.key), _reason(err, col))
        name = str(item.get("name", ""))
        if name:
            if name in item_rows:
                _add(errors, row, label("item_name"), f"信息项名称“{name}”与第 {item_rows[name]} 行重复")
            else:
                item_rows[name] = row
        items.append(item)
    if not items:
        _add(errors, first, label("item_name"), "至少需要一个信息项")
    if errors:
        return None, errors

    try:
        entry = EntryIn.model_validate({**data, "items": items})
    except ValidationError as exc:  # anything EntryIn checks beyond its parts
        for err in exc.errors(include_url=False):
            _add(errors, first, label("name"), _reason(err, None))
        return None, errors
    provider = block.values.get("provider_name", ("", first))[0] or None
    return ParsedEntry(first, block.rows[-1], code, entry, provider), errors


def parse_workbook(content: bytes, *, sheet: str | None = None) -> ImportReport:
    """Read a filled-in catalog template.

    Structural problems (not an .xlsx, no header, required columns missing) raise ``ValidationFailed``;
    problems in rows are collected in the report, and entries without problems are still returned.
    """
    wb = _load(content)
    try:
        ws, layout = _locate(wb, sheet)
        _check_columns(layout)
        grid, continued = _read_grid(wb, ws)
    except ValidationFailed:
        raise
    except Exception as exc:  # read-only mode parses lazily, so damage inside a sheet shows up here
        raise ValidationFailed(_BAD_FILE, code="catalog.import.bad_file") from exc
    finally:
        wb.close()
    data = _Sheet(grid, continued, layout)
    errors: list[RowError] = []
    blocks = _group(data, errors)
    # Inconsistent repeated values make their entry invalid: remember which rows they were on.
    conflict_rows = {e.row for e in errors}
    entries: list[ParsedEntry] = []
    codes: dict[str, int] = {}
    for block in blocks:
        parsed, block_errors = _parse_block(data, block, codes)
        errors.extend(block_errors)
        if parsed is not None and not conflict_rows.intersection(block.rows):
            entries.append(parsed)
    order = {c.key: i for i, c in enumerate(COLUMNS)}
    position = {layout.label(k): order[k] for k in order}
    errors.sort(key=lambda e: (e.row, position.get(e.column, len(order))))
    return ImportReport(entries, errors, len(blocks), sheet=layout.sheet, header_row=layout.header_row)


# --------------------------------------------------------------------------------------------------- export

_THIN = Side(style="thin", color="A6A6A6")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_ITEM_HEADER_FILL = PatternFill("solid", fgColor="E2EFDA")
_REQUIRED_FONT = Font(bold=True, color="C00000")
_HEADER_FONT = Font(bold=True)
_WRAP_TOP = Alignment(wrap_text=True, vertical="top")
_WRAP_CENTER = Alignment(wrap_text=True, vertical="center")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
VALIDATION_EXTRA_ROWS = 500  # drop-down lists also cover empty rows people add below


def _as_mapping(entry: Mapping[str, Any] | BaseModel) -> Mapping[str, Any]:
    return entry.model_dump() if isinstance(entry, BaseModel) else entry


def _cell_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value) or None
    if isinstance(value, list | tuple):
        return "、".join(str(v) for v in value) or None
    return value


def _put(ws: Worksheet, row: int, col: int, value: Any) -> None:
    cell = ws.cell(row=row, column=col, value=_cell_value(value))
    if isinstance(cell.value, str) and cell.value.startswith("="):
        cell.data_type = "s"  # text, never a formula: exported content must not execute in Excel


def _entry_cell(entry: Mapping[str, Any], col: Column, seq: int) -> Any:
    if col.key == "seq":
        return seq
    return entry.get(col.field)


def _item_cell(item: Mapping[str, Any], col: Column) -> Any:
    value = item.get(col.field)
    if col.field == "data_type" and value is not None:
        return DATA_TYPE_LABELS.get(str(value), str(value))
    return value


def _sorted_items(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = [_as_mapping(i) for i in entry.get("items") or []]
    if all("position" in i and i["position"] is not None for i in items):
        items.sort(key=lambda i: i["position"])
    return items


def _title(entries: Sequence[Mapping[str, Any]]) -> str:
    providers = {str(e.get("provider_name")) for e in entries if e.get("provider_name")}
    return f"{providers.pop()}政务数据资源目录" if len(providers) == 1 else "政务数据资源目录"


def _add_validations(ws: Worksheet, last_row: int) -> None:
    end = max(last_row, 2) + VALIDATION_EXTRA_ROWS
    for index, col in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        if col.choices:
            dv = DataValidation(
                type="list",
                formula1='"' + ",".join(col.choices) + '"',
                allow_blank=True,
                showErrorMessage=True,
                # Data types may also be typed as codes (C, N…), so only warn there.
                errorStyle="warning" if col.key == "item_data_type" else "stop",
                errorTitle="取值不在可选范围",
                error=f"请从下拉列表中选择：{'、'.join(col.choices)}",
                promptTitle=col.header,
                prompt="请从下拉列表中选择",
                showInputMessage=True,
            )
        elif col.key == "item_length":
            dv = DataValidation(
                type="whole",
                operator="greaterThanOrEqual",
                formula1="1",
                allow_blank=True,
                showErrorMessage=True,
                errorTitle="数据长度应为正整数",
                error="请填写字节数（正整数），或留空",
            )
        else:
            continue
        dv.add(f"{letter}3:{letter}{end}")
        ws.add_data_validation(dv)


def _write_main(ws: Worksheet, entries: Sequence[Mapping[str, Any]], layout: str, title: str) -> None:
    ncols = len(COLUMNS)
    ws.cell(row=1, column=1, value=title).font = Font(bold=True, size=16)
    ws.cell(row=1, column=1).alignment = _CENTER
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=ncols)
    ws.row_dimensions[1].height = 32
    for index, col in enumerate(COLUMNS, start=1):
        cell = ws.cell(row=2, column=index, value=col.header)
        cell.font = _REQUIRED_FONT if col.required else _HEADER_FONT
        cell.fill = _ITEM_HEADER_FILL if col.scope == "item" else _HEADER_FILL
        cell.alignment = _CENTER
        cell.border = _BORDER
        ws.column_dimensions[get_column_letter(index)].width = col.width
    ws.row_dimensions[2].height = 30
    ws.freeze_panes = "C3"

    row = 3
    merges: list[MergedCellRange] = []
    for seq, entry in enumerate(entries, start=1):
        items = _sorted_items(entry)
        span = max(1, len(items))
        for offset in range(span):
            item = items[offset] if offset < len(items) else {}
            for index, col in enumerate(COLUMNS, start=1):
                if col.scope == "item":
                    _put(ws, row + offset, index, _item_cell(item, col))
                elif offset == 0 or layout == "repeated":
                    _put(ws, row + offset, index, _entry_cell(entry, col, seq))
                cell = ws.cell(row=row + offset, column=index)
                cell.border = _BORDER
                cell.alignment = _WRAP_CENTER if col.scope != "item" and layout == "merged" else _WRAP_TOP
        if layout == "merged" and span > 1:
            for index, col in enumerate(COLUMNS, start=1):
                if col.scope != "item":
                    letter = get_column_letter(index)
                    merges.append(MergedCellRange(ws, f"{letter}{row}:{letter}{row + span - 1}"))
        row += span
    # ws.merge_cells checks each new range against all earlier ones (quadratic) and restyles borders we
    # already set; the ranges cannot overlap here, so register them in one go.
    ws.merged_cells = MultiCellRange([*ws.merged_cells.ranges, *merges])
    _add_validations(ws, row - 1)


def _write_guide(ws: Worksheet) -> None:
    notes = [
        "填写说明",
        "1. 每个信息项占一行；同一目录的多个信息项连续排列。",
        "2. 目录级的列（序号至职责依据）可在该目录各行重复填写，也可只填第一行或合并单元格；"
        "填写新的“信息资源名称”即开始一条新目录。",
        "3. 红色列名为必填列；带下拉列表的列请从列表中选择。",
        "4. 表头所在行须在前 10 行内，表头上方可有标题行。",
        "5. 新编目录的“信息资源代码”留空；填写已有代码表示更新该目录。",
    ]
    for i, note in enumerate(notes, start=1):
        cell = ws.cell(row=i, column=1, value=note)
        if i == 1:
            cell.font = Font(bold=True, size=14)
    row = len(notes) + 2
    for index, head in enumerate(("列名", "级别", "是否必填", "说明", "可选值"), start=1):
        cell = ws.cell(row=row, column=index, value=head)
        cell.font, cell.fill, cell.border, cell.alignment = _HEADER_FONT, _HEADER_FILL, _BORDER, _CENTER
    for col in COLUMNS:
        row += 1
        choices = "、".join(col.choices)
        if col.key == "item_data_type":
            choices = "、".join(f"{c} {label}" for c, label in DATA_TYPE_LABELS.items())
        values = (
            col.header,
            "信息项" if col.scope == "item" else "目录",
            "是" if col.required else "否",
            col.help + (f" 也可写作：{'、'.join(col.synonyms)}。" if col.synonyms else ""),
            choices,
        )
        for index, value in enumerate(values, start=1):
            cell = ws.cell(row=row, column=index, value=value)
            cell.border, cell.alignment = _BORDER, _WRAP_TOP
    row += 2
    ws.cell(row=row, column=1, value="信息资源分类（类、项）").font = Font(bold=True, size=12)
    row += 1
    for index, head in enumerate(("分类码前缀", "类", "项"), start=1):
        cell = ws.cell(row=row, column=index, value=head)
        cell.font, cell.fill, cell.border = _HEADER_FONT, _HEADER_FILL, _BORDER
    for class_code, (class_name, subjects) in RESOURCE_CLASSES.items():
        for subject_code, subject_name in subjects.items() or [("", "（按提供部门，项、目自行编排）")]:
            row += 1
            for index, value in enumerate((f"{class_code}{subject_code}", class_name, subject_name), start=1):
                ws.cell(row=row, column=index, value=value).border = _BORDER
    for letter, width in zip("ABCDE", (16, 10, 10, 60, 40), strict=True):
        ws.column_dimensions[letter].width = width


def export_workbook(
    entries: Sequence[Mapping[str, Any] | BaseModel],
    *,
    layout: Literal["merged", "repeated"] = "merged",
    title: str | None = None,
) -> bytes:
    """Write entries (EntryRead-shaped dicts with ``items``) in the catalog template; returns .xlsx bytes.

    ``layout="merged"`` writes entry-level columns once in cells merged over the entry's item rows;
    ``"repeated"`` repeats them on every row (easier to sort and filter).
    """
    rows = [_as_mapping(e) for e in entries]
    wb = Workbook()
    ws = wb.active
    assert isinstance(ws, Worksheet)
    ws.title = MAIN_SHEET
    _write_main(ws, rows, layout, title or _title(rows))
    _write_guide(wb.create_sheet(GUIDE_SHEET))
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


EXAMPLE_ENTRY: dict[str, Any] = {
    "code": None,
    "name": "企业登记信息",
    "provider_name": "省市场监督管理局",
    "class_code": "102001",
    "summary": "全省各类市场主体的设立、变更、注销登记信息，包括名称、统一社会信用代码、法定代表人、住所等。",
    "resource_format": ResourceFormat.DATABASE.value,
    "format_detail": "MySQL",
    "sharing_type": SharingType.CONDITIONAL.value,
    "sharing_condition": "用于市场主体监管、政务服务办理，依据《市场主体登记管理条例》共享。",
    "not_shared_basis": "",
    "sharing_way": SharingWay.API.value,
    "opening_type": OpeningType.UNCONDITIONAL.value,
    "opening_condition": "",
    "update_cycle": UpdateCycle.DAILY.value,
    "level": EntryLevel.DEPARTMENT.value,
    "tags": ["企业", "登记", "法人"],
    "related_codes": [],
    "duty_basis": "《市场主体登记管理条例》第五条",
    "items": [
        {
            "name": "企业名称",
            "column_name": "qymc",
            "data_type": "C",
            "length": 200,
            "description": "市场主体登记的名称",
            "sharing_type": None,
            "opening_type": None,
            "sensitivity": "一般1",
        },
        {
            "name": "统一社会信用代码",
            "column_name": "tyshxydm",
            "data_type": "C",
            "length": 18,
            "description": "18 位统一社会信用代码",
            "sharing_type": None,
            "opening_type": None,
            "sensitivity": "一般1",
        },
        {
            "name": "法定代表人",
            "column_name": "fddbr",
            "data_type": "C",
            "length": 50,
            "description": "法定代表人姓名",
            "sharing_type": SharingType.CONDITIONAL.value,
            "opening_type": OpeningType.NOT_OPEN.value,
            "sensitivity": "一般3",
        },
        {
            "name": "成立日期",
            "column_name": "clrq",
            "data_type": "D",
            "length": 8,
            "description": "",
            "sharing_type": None,
            "opening_type": None,
            "sensitivity": "一般1",
        },
    ],
}


def template_workbook() -> bytes:
    """An empty template with one example entry, for departments to download and fill in."""
    return export_workbook([EXAMPLE_ENTRY], title="XX单位政务数据资源目录（示例行可删除）")
