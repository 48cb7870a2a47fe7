"""Demo file exchange and ferry: packages between provincial departments (one signed for, one waiting), a trusted
Internet-side node, one approved ferry export written to the outbound directory and one waiting for approval.

Called by the demo builder after organizations and users exist (``seed_files``); everything goes through the
real services, so manifests are signed, digests computed and tickets opened exactly as in use.
"""

from __future__ import annotations

import io
import random
import zipfile
from datetime import date

from sqlalchemy.orm import Session

from zhengshu.core.config import Settings
from zhengshu.exchange.files import ferry, nodekeys
from zhengshu.exchange.files import service as files_service
from zhengshu.exchange.files.schemas import ExportIn, PackageIn
from zhengshu.exchange.files.service import IncomingFile
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization, User
from zhengshu.security.actor import SYSTEM_ACTOR

EXTERNAL_NODE = "360000W"
_DISTRICTS = ("东湖区", "西湖区", "青云谱区", "青山湖区", "新建区", "红谷滩区", "南昌县", "进贤县")
_WORDS = ("赣江", "洪城", "滕王", "豫章", "昌北", "瑶湖", "鄱阳", "庐山")
_KINDS = ("科技有限公司", "商贸有限公司", "建设工程有限公司", "农业发展有限公司", "物流有限公司")


def _pdf(text: str) -> bytes:
    """A minimal but well-formed one-page PDF (ASCII content; it stands for a signed cover letter)."""
    body = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(body)).encode() + b" >>\nstream\n" + body + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _enterprises_csv(rng: random.Random, n: int) -> bytes:
    from zhengshu.demo.identities import uscc

    lines = ["统一社会信用代码,企业名称,登记机关,成立日期"]
    for _ in range(n):
        name = f"江西{rng.choice(_WORDS)}{rng.choice(_WORDS)}{rng.choice(_KINDS)}"
        district = rng.choice(_DISTRICTS)
        day = date(rng.randint(2005, 2025), rng.randint(1, 12), rng.randint(1, 28))
        lines.append(f"{uscc(rng, region_code='360100')},{name},南昌市{district}市场监督管理局,{day.isoformat()}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _files(entries: dict[str, bytes]) -> list[IncomingFile]:
    return [IncomingFile(name, io.BytesIO(data)) for name, data in entries.items()]


def seed_files(
    session: Session,
    *,
    orgs: dict[str, Organization],
    users: dict[str, User],
    settings: Settings,
    rng: random.Random,
) -> dict[str, int]:
    """Two packages, a trusted peer node and two ferry exports; returns counts by kind."""
    actor = {
        name: org_service.actor_for(users[name]) for name in ("officer_scjg", "officer_rst", "officer_gat", "reviewer")
    }
    counts: dict[str, int] = {}
    sent = files_service.send(
        session,
        actor=actor["officer_scjg"],
        package_in=PackageIn(
            title="2026年第三季度新设立企业名单",
            note="按季度向人社、民政部门推送，用于社保登记与社会组织管理。",
            recipient_org_ids=[orgs["prov.rst"].id, orgs["prov.mzt"].id],
            expires_days=60,
        ),
        files=_files(
            {
                "新设立企业名单.csv": _enterprises_csv(rng, 200),
                "推送说明.pdf": _pdf("Quarterly list of newly registered enterprises"),
            }
        ),
        settings=settings,
    )
    files_service.receipt(session, actor=actor["officer_rst"], package_id=sent.id, settings=settings)
    files_service.send(
        session,
        actor=actor["officer_gat"],
        package_in=PackageIn(
            title="户籍迁移统计报表（压缩包）",
            recipient_org_ids=[orgs["prov.mzt"].id],
            expires_days=30,
        ),
        files=_files(
            {
                "户籍迁移统计.zip": _zip(
                    {"迁入.csv": b"month,count\n2026-09,1830\n", "迁出.csv": b"month,count\n2026-09,1204\n"}
                )
            }
        ),
        settings=settings,
    )
    counts["packages"] = 2
    # The Internet-side node of the province: its public key as if imported with ``zhengshu ferry keys trust``.
    peer = nodekeys.create_local_key(
        session,
        actor=SYSTEM_ACTOR,
        node_code=EXTERNAL_NODE,
        node_name="江西省政务数据开放平台（互联网区）",
        settings=settings,
    )
    document = nodekeys.public_document(peer)
    session.delete(peer)
    session.flush()
    nodekeys.trust_peer(session, actor=SYSTEM_ACTOR, document=document, note="演示：互联网区开放平台节点")
    approved = ferry.request_export(
        session,
        actor=actor["officer_scjg"],
        export_in=ExportIn(
            title="企业登记公示信息（开放数据更新）",
            purpose="更新开放平台的企业登记公示数据集",
            classification=ferry.NON_CLASSIFIED,
            target_node=EXTERNAL_NODE,
        ),
        files=_files({"企业登记公示信息.csv": _enterprises_csv(rng, 100)}),
        settings=settings,
    )
    ferry.decide(
        session,
        actor=actor["reviewer"],
        export_id=approved.id,
        approve=True,
        comment="非涉密，同意导出",
        settings=settings,
    )
    ferry.request_export(
        session,
        actor=actor["officer_gat"],
        export_in=ExportIn(
            title="交通违法处理网点名录",
            purpose="在互联网区公开办事网点",
            classification=ferry.NON_CLASSIFIED,
            target_node=EXTERNAL_NODE,
        ),
        files=_files({"处理网点.csv": "网点名称,地址\n南昌市交警支队车管所,南昌市青山湖区\n".encode()}),
        settings=settings,
    )
    counts["ferry_exports"] = 2
    return counts
