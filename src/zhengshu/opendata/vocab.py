"""Vocabularies of the open-data portal: fields (领域), licences, formats, statuses."""

from __future__ import annotations

# 领域: the subject areas provincial portals file datasets under (浙江/上海/贵州 use close variants).
FIELDS: dict[str, str] = {
    "economy": "经济建设",
    "credit": "信用服务",
    "finance": "财税金融",
    "transport": "交通运输",
    "education": "教育文化",
    "health": "医疗卫生",
    "social": "社保就业",
    "civil": "民生服务",
    "environment": "生态环境",
    "resources": "资源能源",
    "urban": "城建住房",
    "agriculture": "农业农村",
    "safety": "安全生产",
    "market": "市场监管",
    "science": "科技创新",
    "tourism": "文化休闲",
    "government": "机构团体",
    "geography": "地理空间",
    "other": "其他",
}

# Licence codes with their Chinese label, English label and canonical URL (DCAT-AP dct:license needs a URI).
LICENCES: dict[str, dict[str, str]] = {
    "CC-BY-4.0": {
        "label": "署名 4.0 国际（CC BY 4.0）",
        "label_en": "Creative Commons Attribution 4.0 International",
        "url": "https://creativecommons.org/licenses/by/4.0/",
    },
    "CC0-1.0": {
        "label": "公有领域贡献（CC0 1.0）",
        "label_en": "Creative Commons Zero v1.0 Universal",
        "url": "https://creativecommons.org/publicdomain/zero/1.0/",
    },
    "ODC-BY-1.0": {
        "label": "开放数据共享署名许可（ODC-By 1.0）",
        "label_en": "Open Data Commons Attribution License v1.0",
        "url": "https://opendatacommons.org/licenses/by/1-0/",
    },
    "GOV-OPEN-1.0": {
        "label": "政府数据开放许可协议（署名、不得歪曲）",
        "label_en": "Government Open Data Licence (attribution, no misrepresentation)",
        "url": "https://zhengshu.org/licences/gov-open-1.0",
    },
}
DEFAULT_LICENCE = "GOV-OPEN-1.0"

STATUS_LABELS = {"published": "已开放", "unpublished": "已撤回"}

# Download formats with media types; the label is what the dataset page shows.
FORMATS: dict[str, dict[str, str]] = {
    "csv": {"label": "CSV", "media_type": "text/csv; charset=utf-8"},
    "json": {"label": "JSON", "media_type": "application/json"},
    "jsonl": {"label": "JSON Lines", "media_type": "application/x-ndjson"},
    "xlsx": {
        "label": "Excel（XLSX）",
        "media_type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    },
    "parquet": {"label": "Parquet", "media_type": "application/vnd.apache.parquet"},
}

OPENABLE = ("无条件开放", "有条件开放")


def field_label(code: str) -> str:
    return FIELDS.get(code, code)


def licence_label(code: str) -> str:
    return LICENCES.get(code, {}).get("label", code)
