"""Catalog vocabularies from DOMAIN.md. Values are the Chinese terms people fill in templates."""

from __future__ import annotations

from enum import StrEnum


class SharingType(StrEnum):
    UNCONDITIONAL = "无条件共享"
    CONDITIONAL = "有条件共享"
    NOT_SHARED = "不予共享"


class OpeningType(StrEnum):
    UNCONDITIONAL = "无条件开放"
    CONDITIONAL = "有条件开放"
    NOT_OPEN = "不予开放"


class SharingWay(StrEnum):
    TABLE = "库表"
    API = "接口"
    FILE = "文件"
    EMAIL = "邮件"
    DISK = "拷盘"
    MEDIA = "介质交换"


class UpdateCycle(StrEnum):
    REALTIME = "实时"
    DAILY = "每日"
    WEEKLY = "每周"
    MONTHLY = "每月"
    QUARTERLY = "每季度"
    HALF_YEARLY = "每半年"
    YEARLY = "每年"
    IRREGULAR = "不定期"


class ResourceFormat(StrEnum):
    FILE = "电子文件"
    SPREADSHEET = "电子表格"
    DATABASE = "数据库"
    IMAGE = "图形图像"
    STREAM = "流媒体"
    SELF_DESCRIBING = "自描述格式"
    API = "服务接口"


class DataType(StrEnum):
    """信息项数据类型代码."""

    C = "C"  # 字符
    N = "N"  # 数值
    Y = "Y"  # 货币
    D = "D"  # 日期
    T = "T"  # 日期时间
    L = "L"  # 逻辑
    M = "M"  # 备注
    G = "G"  # 通用(二进制)
    B = "B"  # 双精度
    I = "I"  # 整型  # noqa: E741
    F = "F"  # 浮点


DATA_TYPE_LABELS = {
    "C": "字符型",
    "N": "数值型",
    "Y": "货币型",
    "D": "日期型",
    "T": "日期时间型",
    "L": "逻辑型",
    "M": "备注型",
    "G": "通用型",
    "B": "双精度型",
    "I": "整型",
    "F": "浮点型",
}


class Sensitivity(StrEnum):
    """Grades of GB/T 43697-2024 with the 一般 level split in four (names are policy)."""

    CORE = "核心"
    IMPORTANT = "重要"
    GENERAL4 = "一般4"
    GENERAL3 = "一般3"
    GENERAL2 = "一般2"
    GENERAL1 = "一般1"


SENSITIVITY_ORDER = ["一般1", "一般2", "一般3", "一般4", "重要", "核心"]


class EntryLevel(StrEnum):
    DEPARTMENT = "部门"
    LOCAL = "地方"
    NATIONAL = "国家"


class EntryStatus(StrEnum):
    DRAFT = "draft"  # 草稿
    SUBMITTED = "submitted"  # 待审核
    RETURNED = "returned"  # 已退回
    PUBLISHED = "published"  # 已发布
    WITHDRAWN = "withdrawn"  # 已下架


ENTRY_STATUS_LABELS = {
    "draft": "草稿",
    "submitted": "待审核",
    "returned": "已退回",
    "published": "已发布",
    "withdrawn": "已下架",
}

# 信息资源分类: 类 (1 digit) with its 项 (2 digits). Codes are this platform's numbering of DOMAIN.md's classes.
RESOURCE_CLASSES: dict[str, tuple[str, dict[str, str]]] = {
    "1": (
        "基础信息资源",
        {"01": "人口", "02": "法人单位", "03": "自然资源和空间地理", "04": "社会信用", "05": "电子证照"},
    ),
    "2": (
        "主题信息资源",
        {
            "01": "公共服务",
            "02": "健康保障",
            "03": "社会保障",
            "04": "食品药品安全",
            "05": "安全生产",
            "06": "价格监管",
            "07": "能源安全",
            "08": "信用体系",
            "09": "城乡建设",
            "10": "社区治理",
            "11": "生态环保",
            "12": "应急维稳",
        },
    ),
    "3": ("部门信息资源", {}),
}
