"""Applications, authorizations, data requests and objections of the demo province, made through the real
services so a newcomer sees every state the workflows reach.

The story at its centre: 省人社厅 applies for three items of 省市场监管局's 企业登记信息 and gets an
authorization; later it objects to a wrong registered address on one record of the mounted 企业登记信息 table,
and 省市场监管局 corrects it. Around it, each workflow is shown in each of its states (waiting, overdue,
escalated, decided in part, appealed, withdrawn, suspended, revoked, expiring soon, disputed…).

Steps happen on past working days (every service takes ``today``); afterwards the time stamps the services
wrote (history lines, creation and decision times) are moved to those days, so timelines read like real
history rather than all "just now".
"""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import SharingType
from zhengshu.catalog.models import CatalogEntry, EntryVersion, MountedResource
from zhengshu.core import clock
from zhengshu.core.config import Settings
from zhengshu.core.timeutil import to_local
from zhengshu.demand import applications, authorizations
from zhengshu.demand import requests as data_requests
from zhengshu.demand.models import (
    ApplicationItem,
    Authorization,
    AuthorizationEvent,
    DataApplication,
    DataRequest,
)
from zhengshu.demand.request_schemas import DataRequestIn
from zhengshu.demand.schemas import ApplicationIn, DecisionIn
from zhengshu.lake import service as lake_service
from zhengshu.lake.connectors import TableRef
from zhengshu.lake.models import DataSource
from zhengshu.objection import service as objection_service
from zhengshu.objection.models import Correction, Objection, ObjectionAttachment, RecordFlag
from zhengshu.objection.schemas import AnswerIn, ArbitrateIn, ObjectionIn
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization, User
from zhengshu.security.actor import SYSTEM_ACTOR, Actor
from zhengshu.workflow.models import Ticket, TicketEvent

T = TypeVar("T")

# Time stamps the services write as "now", by model: moved onto the story's days.
_STAMPED: dict[type[Any], tuple[str, ...]] = {
    TicketEvent: ("at",),
    Ticket: ("created_at", "state_entered_at", "closed_at"),
    AuthorizationEvent: ("at",),
    Authorization: ("created_at", "status_changed_at"),
    DataApplication: ("created_at", "decided_at"),
    ApplicationItem: ("decided_at",),
    DataRequest: ("created_at",),
    Objection: ("created_at", "answered_at", "decided_at"),
    ObjectionAttachment: ("created_at",),
    RecordFlag: ("opened_at", "closed_at"),
    Correction: ("created_at",),
}
_ROADS = ("丰和中大道", "赣江北大道", "解放西路", "迎宾大道", "长堎大道", "庐山南大道", "井冈山大道")
# A one-page PDF: the evidence attached to the story's objection.
_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Count 1/Kids[3 0 R]>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


class _Seeder:
    def __init__(
        self,
        session: Session,
        *,
        orgs: dict[str, Organization],
        users: dict[str, User],
        entries: Sequence[CatalogEntry],
        settings: Settings,
        rng: random.Random,
        today: date,
    ) -> None:
        self.session = session
        self.orgs = orgs
        self.users = users
        self.settings = settings
        self.rng = rng
        self.today = today
        self.started = datetime.now(UTC)
        self.stamped: set[tuple[str, str, str]] = set()
        self.last_stamp: dict[str, datetime] = {}
        self.key_of = {org.id: key for key, org in orgs.items()}
        self.published: dict[tuple[str, str], CatalogEntry] = {}
        for entry in entries:
            key = self.key_of.get(entry.provider_org_id, "")
            if entry.status == "published" and key.startswith("prov."):
                self.published.setdefault((key, entry.name), entry)
        self.counts: dict[str, int] = {}
        # every row the services create while seeding, so their "now" stamps can be moved afterwards
        self.tracked: list[Any] = []
        event.listen(session, "pending_to_persistent", self._track)

    def close(self) -> None:
        event.remove(self.session, "pending_to_persistent", self._track)

    # ---- who and when ---------------------------------------------------------------------------------

    def officer(self, dept: str) -> Actor:
        return org_service.actor_for(self.users[f"officer_{dept}"])

    def reviewer(self) -> Actor:
        return org_service.actor_for(self.users["reviewer"])

    def day(self, working_days_ago: int) -> date:
        """A working day ``working_days_ago`` before today (0: today)."""
        d = self.today
        for _ in range(working_days_ago):
            d -= timedelta(days=1)
            while not clock.is_working_day(d):
                d -= timedelta(days=1)
        return d

    def at(self, day: date, fn: Callable[..., T], **kwargs: Any) -> T:
        """Run a service step on ``day`` and move what it stamped "now" onto that day."""
        if "today" in inspect.signature(fn).parameters:
            kwargs["today"] = day
        result = fn(self.session, **kwargs)
        self.restamp(day)
        return result

    def _track(self, session: Session, instance: Any) -> None:
        if type(instance) in _STAMPED:
            self.tracked.append(instance)

    def restamp(self, day: date) -> None:
        self.session.flush()
        opening = datetime.combine(day, time(9, 0), tzinfo=to_local(self.started).tzinfo).astimezone(UTC)
        if day >= to_local(self.started).date():
            opening = min(opening, self.started - timedelta(hours=3))
        for row in self.tracked:
            for column in _STAMPED[type(row)]:
                value = getattr(row, column)
                marker = (row.__tablename__, column, row.id)
                if value is None or value < self.started or marker in self.stamped:
                    continue
                # history lines keep their order within their ticket or authorization
                parent = getattr(row, "ticket_id", None) or getattr(row, "authorization_id", None) or row.id
                group = f"{row.__tablename__}:{parent}"
                last = self.last_stamp.get(group)
                stamp = opening + timedelta(minutes=self.rng.randint(0, 90))
                if last is not None and stamp <= last:
                    stamp = last + timedelta(minutes=self.rng.randint(2, 25))
                setattr(row, column, stamp)
                self.last_stamp[group] = stamp
                self.stamped.add(marker)
        self.session.flush()

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # ---- lookups --------------------------------------------------------------------------------------

    def entry(self, provider: str, name: str | None = None, *, sharing: str | None = None) -> CatalogEntry:
        """A published provincial entry: by name, or the first one of the provider with that sharing type."""
        if name is not None:
            return self.published[(f"prov.{provider}", name)]
        for (key, _), entry in sorted(self.published.items()):
            if key == f"prov.{provider}" and (sharing is None or entry.sharing_type == sharing):
                return entry
        raise LookupError(f"no published entry of {provider} with sharing {sharing}")

    def any_entry(self, *, sharing: str, exclude: set[str]) -> CatalogEntry:
        for (key, _), entry in sorted(self.published.items()):
            if entry.sharing_type == sharing and key.split(".", 1)[1] not in exclude:
                return entry
        raise LookupError(f"no published entry with sharing {sharing}")

    def version(self, entry: CatalogEntry) -> EntryVersion:
        version = catalog_service.version(self.session, version_id=entry.published_version_id)
        assert version is not None
        return version

    def item_keys(
        self, entry: CatalogEntry, names: Sequence[str] | None = None, count: int = 3, sharing: str | None = None
    ) -> list[str]:
        """Item keys by name, or the first ``count`` items that may be applied for (of one sharing type)."""
        version = self.version(entry)
        allowed = {sharing} if sharing else {SharingType.UNCONDITIONAL.value, SharingType.CONDITIONAL.value}
        items = [i for i in version.items if applications.effective_sharing(i, version) in allowed]
        if names is not None:
            by_name = {i.name: i.key for i in items}
            return [by_name[n] for n in names]
        return [i.key for i in items[:count]]

    def resource(self, entry: CatalogEntry) -> MountedResource:
        return next(r for r in entry.resources if r.active)

    def sample_rows(self, entry: CatalogEntry, columns: list[str], limit: int = 200) -> list[dict[str, Any]]:
        """Real rows of the entry's mounted table (the objection names a record that exists)."""
        resource = self.resource(entry)
        source = self.session.get(DataSource, resource.source_id)
        assert source is not None
        table = lake_service.connector_for(source).read_arrow(
            TableRef(resource.table_schema, resource.table_name or ""), columns, limit
        )
        return table.to_pylist()

    # ---- applications ---------------------------------------------------------------------------------

    def apply(
        self,
        consumer: str,
        entry: CatalogEntry,
        *,
        day: date,
        purpose: str,
        basis: str,
        system: str,
        names: Sequence[str] | None = None,
        count: int = 3,
        sharing: str | None = None,
        end_on: date | None = None,
        way: str = "接口",
    ) -> DataApplication:
        actor = self.officer(consumer)
        application_in = ApplicationIn.model_validate(
            {
                "entry_id": entry.id,
                "item_keys": self.item_keys(entry, names, count, sharing),
                "purpose": purpose,
                "basis": basis,
                "business_system": system,
                "start_on": day,
                "end_on": end_on or date(day.year + 2, day.month, min(day.day, 28)),
                "delivery_way": way,
                "contact_name": actor.display_name,
                "contact_phone": f"0791-8{self.rng.randrange(10**6, 10**7)}",
            }
        )
        return self.at(day, applications.create, actor=actor, application_in=application_in)

    def comply(self, app: DataApplication, day: date, comment: str = "用途与申请部门法定职责相符") -> None:
        self.at(day, applications.comply, actor=self.reviewer(), application_id=app.id, comment=comment)

    def decide(self, app: DataApplication, day: date, refuse: dict[str, str] | None = None, comment: str = "") -> None:
        """The provider approves every pending item except those in ``refuse`` (name → reason)."""
        refuse = refuse or {}
        decisions = [
            {
                "item_key": i.item_key,
                "decision": "refuse" if i.name in refuse else "approve",
                "reason": refuse.get(i.name, ""),
            }
            for i in app.items
            if i.status == "pending"
        ]
        decision_in = DecisionIn.model_validate({"items": decisions, "comment": comment})
        provider = self.officer(self.key_of[app.provider_org_id].split(".", 1)[1])
        self.at(day, applications.decide, actor=provider, application_id=app.id, decision_in=decision_in)

    def authorization(self, app: DataApplication) -> Authorization:
        return authorizations.for_application(self.session, application_id=app.id)[0]

    def seed_applications(self) -> dict[str, DataApplication]:
        d = self.day
        scjg_entry = self.entry("scjg", "企业登记信息")
        people = self.entry("gat", "人口基本信息")
        insurance = self.entry("rst", "社会保险参保信息")
        taxpayers = self.entry("sw", "纳税人登记信息")
        apps: dict[str, DataApplication] = {}

        # overdue provider review, escalated by the daily job before anything else is waiting on a provider
        a = self.apply(
            "wjw",
            people,
            day=d(16),
            names=["身份证号", "姓名", "出生日期"],
            purpose="出生医学证明签发时核验新生儿父母身份",
            basis="《母婴保健法》第二十三条；本委“三定”方案",
            system="江西省出生医学证明管理系统",
        )
        self.comply(a, d(15))
        self.at(self.today, applications.escalate_overdue, actor=SYSTEM_ACTOR)
        apps["escalated"] = a

        # the story: 人社厅 applies for three items of 企业登记信息 and is granted all three
        a = self.apply(
            "rst",
            scjg_entry,
            day=d(30),
            names=["统一社会信用代码", "企业名称", "住所"],
            purpose="社会保险登记、参保单位信息变更时核验企业登记信息，减少群众和企业提交的证明材料",
            basis="《社会保险法》第五十七条、第五十八条；《江西省公共数据管理办法》第二十一条",
            system="江西省社会保险信息系统",
        )
        self.comply(a, d(29))
        self.decide(a, d(27), comment="同意按申请的用途使用，不得用于其他用途")
        apps["story"] = a
        # ... and the same items by table exchange into its own data warehouse (the nightly sync of the story)
        a = self.apply(
            "rst",
            scjg_entry,
            day=d(26),
            names=["统一社会信用代码", "企业名称", "住所"],
            purpose="每日同步企业登记信息到社会保险数据仓库，用于参保单位信息比对",
            basis="《社会保险法》第五十七条；《江西省公共数据管理办法》第二十一条",
            system="江西省社会保险数据仓库",
            way="库表",
        )
        self.comply(a, d(25))
        self.decide(a, d(24), comment="同意以库表方式每日交换")
        apps["story_table"] = a

        # a partial decision still open for appeal
        a = self.apply(
            "sw",
            people,
            day=d(5),
            names=["身份证号", "姓名", "户籍地址"],
            purpose="自然人纳税人身份信息核验",
            basis="《税收征收管理法》第六条；《个人所得税法》第九条",
            system="金税三期个人所得税管理系统",
        )
        self.comply(a, d(4))
        self.decide(
            a, d(1), refuse={"户籍地址": "户籍地址不属于纳税人身份核验的必要信息，请以纳税人填报的联系地址为准"}
        )
        apps["partial"] = a

        # refused in part, appealed, now with the data authority
        a = self.apply(
            "mzt",
            insurance,
            day=d(12),
            names=["身份证号", "姓名", "参保状态", "缴费基数"],
            purpose="最低生活保障家庭经济状况核对",
            basis="《社会救助暂行办法》第十一条；《江西省最低生活保障办法》",
            system="江西省居民家庭经济状况核对系统",
        )
        self.comply(a, d(11))
        self.decide(a, d(7), refuse={"缴费基数": "缴费基数属于个人收入信息，需当事人书面授权"})
        self.at(
            d(3),
            applications.appeal,
            actor=self.officer("mzt"),
            application_id=a.id,
            reason="低保申请人均已签署家庭经济状况核对授权书，缴费基数是核对收入的必要信息",
        )
        apps["appealed"] = a

        # waiting for the applicant's supplement
        a = self.apply(
            "jst",
            scjg_entry,
            day=d(6),
            names=["统一社会信用代码", "企业名称", "登记状态"],
            purpose="建筑业企业资质审批时核验企业登记状态",
            basis="《建筑业企业资质管理规定》",
            system="江西省建筑市场监管公共服务平台",
        )
        self.comply(a, d(5))
        self.at(
            d(3),
            applications.request_supplement,
            actor=self.officer("scjg"),
            application_id=a.id,
            reason="请补充资质审批业务的办理量及系统安全等级保护测评报告",
        )
        apps["supplement"] = a

        # waiting for the provider (in time)
        a = self.apply(
            "gat",
            scjg_entry,
            day=d(2),
            names=["统一社会信用代码", "企业名称", "法定代表人"],
            purpose="涉企案件侦办中核实企业及其法定代表人",
            basis="《人民警察法》第六条；《刑事诉讼法》第五十四条",
            system="江西省公安大数据平台",
            way="库表",
        )
        self.comply(a, d(1))
        apps["provider_review"] = a

        # waiting for compliance review: one in time, one overdue
        apps["compliance"] = self.apply(
            "ybj",
            people,
            day=d(0),
            names=["身份证号", "姓名", "人员状态"],
            purpose="医保参保人员死亡、迁出状态比对，防止冒领医保待遇",
            basis="《医疗保障基金使用监督管理条例》第十五条",
            system="江西省医疗保障信息平台",
        )
        apps["compliance_overdue"] = self.apply(
            "jyt",
            people,
            day=d(6),
            names=["身份证号", "姓名", "户籍地址"],
            purpose="义务教育入学户籍核验",
            basis="《义务教育法》第十二条",
            system="江西省义务教育招生入学服务平台",
        )

        # withdrawn by the applicant, and refused at compliance
        a = self.apply(
            "jtt",
            scjg_entry,
            day=d(9),
            names=["统一社会信用代码", "企业名称", "经营范围"],
            purpose="道路运输经营许可审批核验",
            basis="《道路运输条例》",
            system="江西省道路运政管理系统",
        )
        self.at(
            d(8),
            applications.withdraw,
            actor=self.officer("jtt"),
            application_id=a.id,
            reason="已改由省大数据中心电子证照库获取",
        )
        apps["withdrawn"] = a
        a = self.apply(
            "wlt",
            people,
            day=d(10),
            names=["身份证号", "姓名", "民族"],
            purpose="旅游市场游客画像分析",
            basis="本厅旅游市场监测工作方案",
            system="江西省智慧旅游平台",
        )
        self.at(
            d(9),
            applications.reject,
            actor=self.reviewer(),
            application_id=a.id,
            reason="用途为统计分析，不属于履行法定职责的必要，请改用省统计局发布的人口统计数据",
        )
        apps["rejected"] = a

        # the provider answered in part; the applicant accepted and the application is closed
        a = self.apply(
            "scjg",
            insurance,
            day=d(25),
            names=["单位统一社会信用代码", "参保单位名称", "参保状态", "缴费基数"],
            purpose="企业年报社保信息比对",
            basis="《企业信息公示暂行条例》第九条",
            system="国家企业信用信息公示系统（江西）",
        )
        self.comply(a, d(24))
        self.decide(a, d(21), refuse={"缴费基数": "年报比对无需个人缴费基数"})
        self.at(d(20), applications.accept, actor=self.officer("scjg"), application_id=a.id, comment="接受答复")
        apps["closed"] = a

        # unconditional items granted by rule at compliance
        open_entry = self.any_entry(sharing=SharingType.UNCONDITIONAL.value, exclude={"rst"})
        a = self.apply(
            "rst",
            open_entry,
            day=d(14),
            count=3,
            sharing=SharingType.UNCONDITIONAL.value,
            purpose="就业创业补贴审核时比对相关信息",
            basis="《就业促进法》第十七条",
            system="江西省就业创业服务平台",
        )
        self.comply(a, d(13), comment="无条件共享数据，准予按规则授权")
        apps["rule"] = a

        # authorizations that were suspended, revoked, or expire soon
        a = self.apply(
            "fgw",
            scjg_entry,
            day=d(60),
            names=["统一社会信用代码", "企业名称", "行业代码"],
            purpose="重点项目业主单位信用核查",
            basis="《政府投资条例》第十一条",
            system="江西省投资项目在线审批监管平台",
        )
        self.comply(a, d(59))
        self.decide(a, d(56))
        self.at(
            d(10),
            authorizations.suspend,
            actor=self.officer("scjg"),
            authorization_id=self.authorization(a).id,
            reason="调用日志显示存在批量下载行为，暂停授权待使用方说明情况",
        )
        apps["suspended"] = a
        a = self.apply(
            "tjj",
            taxpayers,
            day=d(80),
            names=["纳税人识别号", "纳税人名称", "登记注册类型"],
            purpose="经济普查单位清查比对",
            basis="《统计法》第七条；《全国经济普查条例》",
            system="江西省统计联网直报平台",
            way="文件",
        )
        self.comply(a, d(79))
        self.decide(a, d(76))
        self.at(
            d(15),
            authorizations.revoke,
            actor=self.officer("sw"),
            authorization_id=self.authorization(a).id,
            reason="经济普查清查工作已结束，按约定撤销授权",
        )
        apps["revoked"] = a
        start = self.day(230)
        a = self.apply(
            "czt",
            taxpayers,
            day=start,
            names=["纳税人识别号", "纳税人名称", "纳税人状态"],
            purpose="政府采购供应商纳税状态核验",
            basis="《政府采购法》第二十二条",
            system="江西省政府采购电子卖场",
            end_on=self.today + timedelta(days=18),
        )
        self.comply(a, self.day(229))
        self.decide(a, self.day(226))
        apps["expiring"] = a
        for name, app in apps.items():
            self.count(f"application:{name}:{app.state}")
        return apps

    # ---- data requests --------------------------------------------------------------------------------

    def request(self, requester: str, provider: str | None, day: date, **fields: Any) -> DataRequest:
        org = self.orgs[f"prov.{provider}"] if provider else None
        request_in = DataRequestIn.model_validate({**fields, "provider_org_id": org.id if org else None})
        return self.at(day, data_requests.create, actor=self.officer(requester), request_in=request_in)

    def seed_requests(self) -> dict[str, DataRequest]:
        d = self.day
        reqs: dict[str, DataRequest] = {}

        # never answered: escalated by the daily job to the data authority
        reqs["escalated"] = self.request(
            "ybj",
            "wjw",
            d(16),
            **{
                "title": "医疗机构医师多点执业备案信息",
                "description": "需要全省医师多点执业备案数据，用于医保定点医药机构医师服务行为监管。",
                "items_text": "医师姓名、执业证书编码、备案执业机构、备案时间",
                "purpose": "医保基金监管",
                "basis": "《医疗保障基金使用监督管理条例》第二十二条",
                "business_system": "江西省医保智能监管系统",
            },
        )
        self.at(self.today, data_requests.escalate_overdue, actor=SYSTEM_ACTOR)

        # overdue, not yet escalated (the daily job would do it tonight)
        reqs["overdue"] = self.request(
            "nyt",
            "zrt",
            d(12),
            **{
                "title": "高标准农田建设项目图斑",
                "description": "需要高标准农田建设项目的空间范围，用于耕地保护和补贴核查。",
                "items_text": "项目名称、图斑编号、面积、坐标范围",
                "purpose": "耕地地力保护补贴核查",
                "basis": "《农田建设项目管理办法》",
                "business_system": "江西省农业农村大数据平台",
            },
        )
        # waiting, in time
        reqs["submitted"] = self.request(
            "jst",
            "sw",
            d(1),
            **{
                "title": "建筑业企业纳税信用等级",
                "description": "资质动态核查中需要建筑业企业近三年的纳税信用等级。",
                "items_text": "纳税人识别号、纳税人名称、纳税信用等级、评价年度",
                "purpose": "建筑业企业资质动态核查",
                "basis": "《建筑业企业资质管理规定》第二十九条",
                "business_system": "江西省建筑市场监管公共服务平台",
                "urgency": "紧急",
            },
        )
        # answered by linking a published entry; the requester then applied for it (see applications)
        req = self.request(
            "mzt",
            "rst",
            d(20),
            **{
                "title": "低保家庭成员社会保险参保情况",
                "description": "核对低保申请家庭成员是否在职参保、参保单位及缴费情况。",
                "items_text": "身份证号、姓名、参保状态、参保单位、缴费基数",
                "purpose": "最低生活保障家庭经济状况核对",
                "basis": "《社会救助暂行办法》第十一条",
                "business_system": "江西省居民家庭经济状况核对系统",
            },
        )
        self.at(
            d(18),
            data_requests.link_entry,
            actor=self.officer("rst"),
            request_id=req.id,
            entry_id=self.entry("rst", "社会保险参保信息").id,
        )
        reqs["linked"] = req
        # compiling a new entry
        req = self.request(
            "fgw",
            "tjj",
            d(7),
            **{
                "title": "规模以上工业企业月度产值",
                "description": "需要分行业、分地区的规模以上工业企业月度产值，用于经济运行监测。",
                "items_text": "企业名称、统一社会信用代码、行业代码、月度产值",
                "purpose": "经济运行监测调度",
                "basis": "本委“三定”方案；《江西省经济运行监测工作规则》",
                "business_system": "江西省经济运行监测平台",
            },
        )
        self.at(
            d(5),
            data_requests.compile_entry,
            actor=self.officer("tjj"),
            request_id=req.id,
            comment="本局掌握该数据，正在编制“规模以上工业企业月度产值信息”目录，预计两周内发布",
        )
        reqs["compiling"] = req
        # not held, then closed by the requester; not held, then coordination; cannot be shared
        req = self.request(
            "jyt",
            "mzt",
            d(9),
            **{
                "title": "学生家庭经济困难认定结果",
                "description": "需要家庭经济困难学生认定结果，用于学生资助精准发放。",
                "items_text": "学生身份证号、认定等级、认定学年",
                "purpose": "学生资助",
                "basis": "《学生资助资金管理办法》",
                "business_system": "江西省学生资助管理系统",
            },
        )
        self.at(
            d(7),
            data_requests.answer_not_held,
            actor=self.officer("mzt"),
            request_id=req.id,
            reason="家庭经济困难学生认定由各级学校负责，本厅只掌握低保、特困对象信息",
        )
        reqs["not_held"] = req
        req = self.request(
            "jtt",
            "gat",
            d(11),
            **{
                "title": "网约车驾驶员无犯罪记录核查结果",
                "description": "网约车驾驶员证核发前需要核查驾驶员有无犯罪记录。",
                "items_text": "身份证号、姓名、核查结果",
                "purpose": "网络预约出租汽车驾驶员证核发",
                "basis": "《网络预约出租汽车经营服务管理暂行办法》第十四条",
                "business_system": "江西省道路运政管理系统",
            },
        )
        self.at(
            d(9),
            data_requests.answer_not_held,
            actor=self.officer("gat"),
            request_id=req.id,
            reason="犯罪记录由人民法院判决形成，本厅仅出具无犯罪记录证明，不以数据形式共享",
        )
        self.at(
            d(8),
            data_requests.ask_coordination,
            actor=self.officer("jtt"),
            request_id=req.id,
            reason="无犯罪记录核查是法定前置条件，请数据局协调公安厅以核验接口方式提供",
        )
        reqs["coordination"] = req
        req = self.request(
            "jst",
            "sw",
            d(14),
            **{
                "title": "个人所得税纳税明细",
                "description": "住房公积金贷款审核时需要核实借款人收入。",
                "items_text": "身份证号、姓名、纳税月份、收入额、已缴税额",
                "purpose": "住房公积金贷款审核",
                "basis": "《住房公积金管理条例》第二十六条",
                "business_system": "江西省住房公积金综合服务平台",
            },
        )
        self.at(
            d(12),
            data_requests.refuse,
            actor=self.officer("sw"),
            request_id=req.id,
            legal_basis="《税收征收管理法》第八条、《个人所得税法》第十五条：纳税人的收入信息属于依法保密的涉税信息",
            reason="可由借款人通过个人所得税 App 自行下载纳税记录，或经本人授权后使用核验接口",
        )
        reqs["refused"] = req
        req = self.request(
            "sft",
            "mzt",
            d(20),
            **{
                "title": "殡葬火化信息",
                "description": "公证继承案件中核实被继承人死亡情况。",
                "items_text": "身份证号、姓名、火化日期",
                "purpose": "继承公证",
                "basis": "《公证法》第二十九条",
                "business_system": "江西省公证管理信息系统",
            },
        )
        self.at(
            d(19),
            data_requests.withdraw,
            actor=self.officer("sft"),
            request_id=req.id,
            reason="已在目录中找到“殡葬火化信息”",
        )
        reqs["withdrawn"] = req
        for name, req in reqs.items():
            self.count(f"request:{name}:{req.state}")
        return reqs

    # ---- objections -----------------------------------------------------------------------------------

    def objection(
        self, objector: str, day: date, *, attachments: Sequence[tuple[str, bytes]] = (), **fields: Any
    ) -> Objection:
        return self.at(
            day,
            objection_service.raise_objection,
            actor=self.officer(objector),
            objection_in=ObjectionIn.model_validate(fields),
            attachments=list(attachments),
            settings=self.settings,
        )

    def accept(self, obj: Objection, day: date, comment: str = "已受理，正在核对登记档案") -> None:
        handler = self.officer(self.key_of[obj.handler_org_id].split(".", 1)[1])
        self.at(day, objection_service.accept, actor=handler, objection_id=obj.id, comment=comment)

    def answer(self, obj: Objection, day: date, **answer: Any) -> None:
        handler = self.officer(self.key_of[obj.handler_org_id].split(".", 1)[1])
        self.at(
            day,
            objection_service.answer,
            actor=handler,
            objection_id=obj.id,
            answer_in=AnswerIn.model_validate(answer),
        )

    def seed_objections(self) -> dict[str, Objection]:
        d = self.day
        scjg_entry = self.entry("scjg", "企业登记信息")
        people = self.entry("gat", "人口基本信息")
        taxpayers = self.entry("sw", "纳税人登记信息")
        items = {e.id: {i.name: i.key for i in self.version(e).items} for e in (scjg_entry, people, taxpayers)}
        objs: dict[str, Objection] = {}

        # overdue and escalated to the data authority for supervision
        objs["escalated"] = self.objection(
            "ybj",
            d(14),
            entry_id=taxpayers.id,
            item_key=items[taxpayers.id]["纳税人状态"],
            kind="outdated",
            claimed_value="非正常户",
            description="部分医药机构已被认定为非正常户，目录数据仍显示正常，影响定点协议管理。",
        )
        self.at(self.today, objection_service.escalate_overdue, actor=SYSTEM_ACTOR)

        # the story: a wrong registered address on one record of the mounted 企业登记信息 table
        firms = self.sample_rows(scjg_entry, ["tyshxydm", "qymc", "zs"])
        firm = self.rng.choice([f for f in firms if f["zs"] and re.match(r"^江西省.+?市.+?[区县市]", f["zs"])])
        prefix = re.match(r"^江西省.+?市.+?[区县市]", firm["zs"])
        assert prefix is not None
        right = f"{prefix.group(0)}{self.rng.choice(_ROADS)}{self.rng.randrange(1, 999)}号"
        obj = self.objection(
            "rst",
            d(9),
            attachments=[("营业执照副本（变更后）.pdf", _PDF)],
            entry_id=scjg_entry.id,
            item_key=items[scjg_entry.id]["住所"],
            resource_id=self.resource(scjg_entry).id,
            record_key=firm["tyshxydm"],
            kind="wrong",
            claimed_value=right,
            description=f"办理“{firm['qymc']}”社保登记变更时核对营业执照，企业住所已变更，共享数据仍为旧住所。",
        )
        self.accept(obj, d(8))
        self.answer(
            obj,
            d(6),
            resolution="corrected",
            corrected_value=right,
            old_value=firm["zs"],
            effective_from=d(6),
            note="经核对登记档案，企业已办理住所变更登记，前置库同步遗漏，已更正并补同步",
        )
        self.at(d(5), objection_service.confirm, actor=self.officer("rst"), objection_id=obj.id, comment="已核实，谢谢")
        objs["story"] = obj

        # two departments object to the same person record: one group, accepted and flagged
        residents = self.sample_rows(people, ["sfzh", "xm", "ryzt"])
        resident = self.rng.choice([r for r in residents if r["ryzt"] == "正常"])
        record = {
            "entry_id": people.id,
            "item_key": items[people.id]["人员状态"],
            "resource_id": self.resource(people).id,
            "record_key": resident["sfzh"],
        }
        first = self.objection(
            "mzt",
            d(4),
            **record,
            kind="inconsistent",
            other_source="省民政厅殡葬火化信息",
            claimed_value="死亡",
            description="殡葬火化信息显示该人员已于上月火化，人口基本信息仍为正常状态。",
        )
        self.objection(
            "rst",
            d(3),
            **record,
            kind="outdated",
            claimed_value="死亡",
            description="该人员养老金领取资格认证时发现已死亡，请更新人员状态。",
        )
        self.accept(first, d(2), comment="已受理，正在与户籍派出所核实死亡注销情况")
        objs["grouped"] = first

        # answered "not an error", disputed, now in arbitration
        obj = self.objection(
            "sw",
            d(12),
            entry_id=scjg_entry.id,
            item_key=items[scjg_entry.id]["法定代表人"],
            kind="inconsistent",
            other_source="省税务局纳税人登记信息",
            claimed_value="以税务登记为准",
            description="约 2% 的企业法定代表人与税务登记不一致，请核实。",
        )
        self.accept(obj, d(11))
        self.answer(
            obj,
            d(9),
            resolution="not_error",
            note="法定代表人以市场监管部门登记为准，税务登记信息未及时变更，请税务部门同步更新",
        )
        self.at(
            d(2),
            objection_service.dispute,
            actor=self.officer("sw"),
            objection_id=obj.id,
            reason="抽查的企业已提交变更材料但登记未办结，请数据局协调明确以哪个来源为准",
        )
        objs["arbitrating"] = obj

        # arbitrated and archived: the data authority ordered a correction
        obj = self.objection(
            "gat",
            d(25),
            entry_id=taxpayers.id,
            item_key=items[taxpayers.id]["生产经营地址"],
            kind="outdated",
            claimed_value="以市场监管登记住所为准",
            description="部分纳税人生产经营地址多年未更新，与实际经营地不符，影响案件协查。",
        )
        self.accept(obj, d(24))
        self.answer(obj, d(21), resolution="not_error", note="生产经营地址以纳税人申报为准")
        self.at(
            d(20),
            objection_service.dispute,
            actor=self.officer("gat"),
            objection_id=obj.id,
            reason="申报地址与实地核查不符",
        )
        self.at(
            d(16),
            objection_service.arbitrate,
            actor=self.reviewer(),
            objection_id=obj.id,
            arbitrate_in=ArbitrateIn.model_validate(
                {
                    "decision": "order_correction",
                    "reason": "经组织两部门核实，应以实地核查后的地址为准，责令税务部门限期更正",
                    "corrected_value": "按实地核查结果逐户更正（共 37 户）",
                    "effective_from": d(14),
                }
            ),
        )
        objs["arbitrated"] = obj

        # answered with a correction, waiting for the objector to confirm
        obj = self.objection(
            "jst",
            d(6),
            entry_id=scjg_entry.id,
            item_key=items[scjg_entry.id]["登记状态"],
            kind="outdated",
            claimed_value="注销",
            description="资质审批中发现一批已注销企业仍显示存续。",
        )
        self.accept(obj, d(5))
        self.answer(
            obj,
            d(2),
            resolution="corrected",
            corrected_value="注销",
            old_value="存续",
            effective_from=d(2),
            note="注销登记数据同步任务故障，已修复并补推送",
        )
        objs["answered"] = obj

        # freshly raised, and withdrawn
        objs["raised"] = self.objection(
            "fgw",
            d(1),
            entry_id=scjg_entry.id,
            item_key=items[scjg_entry.id]["行业代码"],
            kind="wrong",
            claimed_value="C3921",
            description="部分企业行业代码仍按 GB/T 4754-2011 编码，与 2017 版不一致。",
        )
        obj = self.objection(
            "czt",
            d(8),
            entry_id=taxpayers.id,
            kind="missing",
            description="目录中缺少新设立的小规模纳税人。",
        )
        self.at(
            d(7),
            objection_service.withdraw,
            actor=self.officer("czt"),
            objection_id=obj.id,
            reason="系本单位查询条件有误",
        )
        objs["withdrawn"] = obj
        for name, obj in objs.items():
            self.count(f"objection:{name}:{obj.state}")
        return objs


def seed_workflows(
    session: Session,
    *,
    orgs: dict[str, Organization],
    users: dict[str, User],
    entries: Sequence[CatalogEntry],
    settings: Settings,
    rng: random.Random,
    today: date,
) -> dict[str, int]:
    """Seed applications, authorizations, data requests and objections; returns counts by story and state."""
    seeder = _Seeder(session, orgs=orgs, users=users, entries=entries, settings=settings, rng=rng, today=today)
    try:
        seeder.seed_applications()
        seeder.seed_requests()
        seeder.seed_objections()
    finally:
        seeder.close()
    return dict(sorted(seeder.counts.items()))
