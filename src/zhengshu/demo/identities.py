"""Synthetic but valid identities for the demo province: resident IDs, unified social credit codes, people
and enterprises. Check characters come from python-stdnum; area codes from the GB/T 2260 table."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from faker import Faker
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from zhengshu.org.divisions import (
    DivisionRow,
    all_current_counties,
    code_in_force,
    current_division,
    division_rows,
    is_valid_in,
)

# Fixed "today" of the demo so the same seed gives the same data on any day.
AS_OF = date(2025, 6, 30)

PROVINCE_PREFIX = "36"

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714-1997
_ORG_CODE_LETTERS = "ABCDEFGHJKLMNPQRTUWXY"  # letters allowed where an organization code sits inside a USCC

# Jiangxi is 99.7 % Han; 畲族 lives in 贵溪, 铅山, 永丰 and a few other counties.
_ETHNICITIES = (
    ("汉族", 9960),
    ("畲族", 12),
    ("回族", 8),
    ("苗族", 5),
    ("壮族", 5),
    ("土家族", 4),
    ("满族", 3),
    ("侗族", 2),
    ("瑶族", 1),
)
_MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "170",
    "173",
    "175",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]
_ROADS = [
    "八一大道",
    "红谷中大道",
    "北京东路",
    "北京西路",
    "阳明路",
    "中山路",
    "胜利路",
    "解放路",
    "人民路",
    "建设路",
    "文化路",
    "滨江路",
    "井冈山大道",
    "青山路",
    "迎宾大道",
    "昌东大道",
    "孺子路",
    "象山北路",
    "叠山路",
    "民德路",
    "站前路",
    "长征路",
    "南京东路",
    "洪都北大道",
    "赣江路",
    "章江路",
    "东湖路",
    "五一路",
    "新华路",
    "光明路",
    "和平路",
    "友谊路",
    "学府路",
    "庐山路",
    "浔阳路",
    "湖滨路",
    "翠微路",
    "紫阳大道",
]
_ESTATES = [
    "锦绣花园",
    "阳光小区",
    "滨江花苑",
    "金色家园",
    "幸福里",
    "翠苑小区",
    "书香门第",
    "紫荆苑",
    "御景园",
    "丽景湾",
    "东方明珠苑",
    "碧水蓝天",
    "福泰苑",
    "恒茂华城",
    "名门世家",
    "绿地新都会",
    "万达华府",
    "梧桐苑",
    "红谷凯旋",
    "青山湖畔",
]

_BRANDS = [
    "恒达",
    "鑫源",
    "华兴",
    "赣鑫",
    "洪都",
    "瑞丰",
    "昌盛",
    "金鹰",
    "赣江",
    "庐山",
    "鄱湖",
    "井冈",
    "章贡",
    "红谷",
    "豫章",
    "宏远",
    "天成",
    "永顺",
    "润泽",
    "嘉禾",
    "盛世",
    "众诚",
    "博雅",
    "康泰",
    "汇通",
    "新科",
    "联创",
    "正邦",
    "泰和",
    "同心",
    "睿智",
    "聚源",
    "锦程",
    "东信",
    "海川",
    "星辉",
    "云帆",
    "百川",
    "诚信",
    "长青",
    "绿源",
    "晶石",
    "华泰",
    "亿达",
    "民生",
    "兴业",
    "景瓷",
    "青花",
    "赣南",
    "橙乡",
    "稀土",
    "铜都",
    "樟乡",
    "临川",
    "信江",
    "袁州",
]
# (GB/T 4754-2017 class code, industry word used in the name, 经营范围 text)
_INDUSTRIES: tuple[tuple[str, str, str], ...] = (
    ("C3311", "金属制品", "金属结构制造；金属制品销售；五金产品批发"),
    ("C3985", "电子", "电子元器件制造；电子产品销售；技术服务、技术开发"),
    ("C1713", "纺织", "棉纺纱加工；针纺织品销售；服装制造"),
    ("C3071", "陶瓷", "日用陶瓷制品制造；陶瓷制品销售；工艺美术品销售"),
    ("C3240", "稀土新材料", "稀土功能材料销售；新材料技术研发；有色金属合金制造"),
    ("C2710", "医药", "药品生产；化学原料药制造；医药技术开发"),
    ("C1371", "食品", "食品生产；食品销售；农副产品加工"),
    ("C3670", "汽车零部件", "汽车零部件及配件制造；汽车零配件批发"),
    ("E4701", "建筑工程", "建设工程施工；建筑劳务分包；住宅室内装饰装修"),
    ("E4813", "市政工程", "市政设施管理；园林绿化工程施工；土石方工程施工"),
    ("F5137", "商贸", "日用百货销售；五金产品零售；家用电器销售"),
    ("F5191", "贸易", "货物进出口；技术进出口；国内贸易代理"),
    ("F5264", "医药连锁", "药品零售；医疗器械经营；保健食品销售"),
    ("G5430", "物流", "道路货物运输；普通货物仓储服务；国内货物运输代理"),
    ("H6110", "酒店管理", "住宿服务；餐饮服务；酒店管理"),
    ("H6210", "餐饮管理", "餐饮服务；食品经营；餐饮管理"),
    ("I6513", "信息技术", "软件开发；信息系统集成服务；数据处理和存储支持服务"),
    ("I6450", "网络科技", "互联网信息服务；网络技术服务；信息技术咨询服务"),
    ("K7010", "房地产开发", "房地产开发经营；物业管理；住房租赁"),
    ("L7211", "企业管理咨询", "企业管理咨询；商务信息咨询；会议及展览服务"),
    ("M7320", "检测技术", "检验检测服务；环境保护监测；技术服务"),
    ("A0141", "农业开发", "水果种植；蔬菜种植；农产品的生产、销售、加工"),
    ("A0411", "生态农业", "水产养殖；农业观光旅游；休闲农业"),
    ("N7723", "环保科技", "固体废物治理；大气污染治理；环保咨询服务"),
    ("P8391", "职业技能培训", "职业技能培训；教育咨询服务；业务培训"),
    ("Q8416", "医疗管理", "医疗服务；健康咨询服务；养老服务"),
)
_COMPANY_FORMS = (
    ("有限公司", "有限责任公司（自然人投资或控股）", 70),
    ("有限公司", "有限责任公司（自然人独资）", 12),
    ("股份有限公司", "股份有限公司（非上市、自然人投资或控股）", 5),
    ("有限公司", "其他有限责任公司", 8),
    ("有限公司", "有限责任公司（国有独资）", 2),
    ("合伙企业（有限合伙）", "有限合伙企业", 3),
)
ENTERPRISE_STATUSES = (("存续", 62), ("在业", 28), ("注销", 10))


def _valid_area_rows(area_code: str, year: int) -> list[DivisionRow]:
    return [r for r in division_rows(area_code) if r.level != "province" and r.valid_in(year)]


def resident_id(rng: random.Random, *, area_code: str, birth: date, male: bool) -> str:
    """An 18-character resident ID (GB 11643) that ``stdnum.cn.ric.validate`` accepts.

    ``area_code`` must be a Jiangxi county or city code in force in the birth year, because that is how
    stdnum (and the public security bureau) reads it; ``divisions.code_in_force`` finds such a code for a
    person living in today's county.
    """
    if not area_code.startswith(PROVINCE_PREFIX) or not _valid_area_rows(area_code, birth.year):
        raise ValueError(f"行政区划代码 {area_code} 在 {birth.year} 年无效，不能用于编制公民身份号码")
    # 顺序码: odd for men, even for women; 000 is not issued.
    sequence = rng.randrange(0, 500) * 2 + 1 if male else rng.randrange(1, 500) * 2
    body = f"{area_code}{birth:%Y%m%d}{sequence:03d}"
    # stdnum's calc_check_digit ignores the last character, so any placeholder will do.
    return body + stdnum_ric.calc_check_digit(body + "0")


def organization_code(rng: random.Random, *, recent: bool | None = None) -> str:
    """A 9-character organization code (GB 11714) with its check character, using USCC-safe characters.

    Codes assigned by market regulators since the 2015 reform start with "MA" (``recent``); older ones are
    all digits. ``None`` picks either.
    """
    if recent is None:
        recent = rng.random() < 0.55
    if recent:
        body = "MA" + "".join(rng.choice("0123456789" + _ORG_CODE_LETTERS) for _ in range(6))
    else:
        body = "".join(rng.choice("0123456789") for _ in range(8))
    return body + organization_code_check(body)


def organization_code_check(body: str) -> str:
    """GB 11714 check character of an 8-character organization code body (letters count A=10 … Z=35)."""
    if len(body) != 8 or not body.isalnum():
        raise ValueError(f"组织机构代码本体应为8位数字或大写字母：{body!r}")
    total = sum(int(char, 36) * weight for char, weight in zip(body, _ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def uscc(
    rng: random.Random,
    *,
    region_code: str,
    authority: str = "9",
    org_type: str = "1",
    recent: bool | None = None,
) -> str:
    """A unified social credit code (GB 32100) that ``stdnum.cn.uscc.validate`` accepts.

    ``authority`` 9 = market regulation (type 1 企业, 2 个体工商户, 3 农民专业合作社); 1 = 机构编制 (type 1
    机关, 2 事业单位); 5 = 民政 (type 1 社会团体, 2 民办非企业单位, 3 基金会).
    """
    if len(authority) != 1 or authority not in _USCC_ALPHABET or not authority.isdigit():
        raise ValueError(f"登记管理部门代码应为一位数字：{authority!r}")
    if len(org_type) != 1 or org_type not in _USCC_ALPHABET:
        raise ValueError(f"机构类别代码无效：{org_type!r}")
    if len(region_code) != 6 or not region_code.isdigit():
        raise ValueError(f"登记管理机关行政区划码应为六位数字：{region_code!r}")
    body = f"{authority}{org_type}{region_code}{organization_code(rng, recent=recent)}"
    return body + stdnum_uscc.calc_check_digit(body)


def _weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o[0] for o in options], weights=[o[1] for o in options])[0]


def mobile(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _county_label(county: DivisionRow) -> tuple[str, str]:
    city = current_division(county.parent_code or "")
    return (city.name if city else ""), county.name


def address(rng: random.Random, county: DivisionRow) -> str:
    """A plausible street address in ``county`` (江西省 + city + county + road + number [+ estate])."""
    city_name, county_name = _county_label(county)
    road = rng.choice(_ROADS)
    number = rng.randrange(1, 999)
    tail = ""
    if rng.random() < 0.7:
        tail = f"{rng.choice(_ESTATES)}{rng.randrange(1, 40)}栋{rng.randrange(1, 33)}0{rng.randrange(1, 5)}室"
    return f"江西省{city_name}{county_name}{road}{number}号{tail}"


def random_birth(rng: random.Random, *, min_age: int = 0, max_age: int = 95) -> date:
    """Birth date with a rough population pyramid (mode around 35)."""
    mode = min(max(35, min_age), max_age)
    age = rng.triangular(min_age, max_age + 1, mode)
    return AS_OF - timedelta(days=int(age * 365.25) + 1)


def person(rng: random.Random, faker: Faker, *, min_age: int = 0, max_age: int = 95) -> dict[str, Any]:
    """A synthetic Jiangxi resident. The ID's area code is the one in force at birth for today's county
    (so older people may carry an abolished code, as in real life); the address is in today's county.

    Deterministic when ``faker`` is seeded too (``faker.seed_instance(...)``); it only supplies names.
    """
    counties = all_current_counties(PROVINCE_PREFIX)
    male = rng.random() < 0.51
    birth = random_birth(rng, min_age=min_age, max_age=max_age)
    while True:
        county = rng.choice(counties)
        area = code_in_force(county.code, birth.year)
        if area is not None and is_valid_in(area, birth.year):
            break
    return {
        "name": faker.name_male() if male else faker.name_female(),
        "gender": "男" if male else "女",
        "birth_date": birth,
        "resident_id": resident_id(rng, area_code=area, birth=birth, male=male),
        "id_area_code": area,
        "county_code": county.code,
        "mobile": mobile(rng),
        "address": address(rng, county),
        "ethnicity": _weighted(rng, _ETHNICITIES),
    }


def enterprise(
    rng: random.Random, faker: Faker, *, legal_representative: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A synthetic enterprise registered in a current Jiangxi county.

    ``legal_representative`` (a ``person()`` dict) links the enterprise to an existing resident, as the demo
    database does; without it an adult is made up on the spot.
    """
    rep = legal_representative or person(rng, faker, min_age=25, max_age=75)
    county = rng.choice(all_current_counties(PROVINCE_PREFIX))
    city_name, county_name = _county_label(county)
    industry_code, industry_word, scope = rng.choice(_INDUSTRIES)
    suffix, enterprise_type = rng.choices(
        [(f[0], f[1]) for f in _COMPANY_FORMS], weights=[f[2] for f in _COMPANY_FORMS]
    )[0]
    brand = rng.choice(_BRANDS) + (rng.choice(_BRANDS) if rng.random() < 0.3 else "")
    prefix = "江西" if rng.random() < 0.35 else city_name.removesuffix("市")
    # Founded after the representative turned 20, and not after the demo date.
    earliest = max(date(1992, 1, 1), rep["birth_date"].replace(year=rep["birth_date"].year + 20, day=1))
    span = max((AS_OF - earliest).days, 1)
    established = earliest + timedelta(days=rng.randrange(span))
    capital = Decimal(rng.choice((10, 30, 50, 100, 200, 300, 500, 800, 1000, 2000, 5000, 10000)))
    authority_is_county = rng.random() < 0.6
    return {
        "name": f"{prefix}{brand}{industry_word}{suffix}",
        "uscc": uscc(rng, region_code=county.code, recent=established >= date(2015, 10, 1)),
        "enterprise_type": enterprise_type,
        "legal_rep_name": rep["name"],
        "legal_rep_id": rep["resident_id"],
        "registered_capital": capital.quantize(Decimal("0.01")),  # 万元
        "established_on": established,
        "address": address(rng, county),
        "county_code": county.code,
        "registration_authority": (
            f"{city_name}{county_name}市场监督管理局" if authority_is_county else f"{city_name}市场监督管理局"
        ),
        "status": _weighted(rng, ENTERPRISE_STATUSES),
        "industry_code": industry_code,
        "business_scope": scope + "（依法须经批准的项目，经相关部门批准后方可开展经营活动）",
    }
