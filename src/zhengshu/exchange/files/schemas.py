"""API shapes of file packages, receipts, node keys and ferry exports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

STATUS_LABELS = {"sent": "已发送", "withdrawn": "已撤回", "purged": "已过期清理"}
EXPORT_STATE_LABELS = {"submitted": "待审批", "approved": "已批准", "refused": "未批准", "withdrawn": "已撤回"}
LEDGER_OUTCOME_LABELS = {"exported": "已导出", "imported": "已导入", "refused": "已拒收"}


class PackageIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)
    recipient_org_ids: list[str] = Field(min_length=1, max_length=100)
    expires_days: int | None = Field(default=None, ge=1)


class FileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    name: str
    size: int
    sha256: str
    sm3: str
    file_type: str
    content_type: str
    download_url: str = ""


class RecipientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    org_id: str
    org_name: str
    first_download_at: datetime | None
    last_download_at: datetime | None
    download_count: int
    received_at: datetime | None


class ReceiptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    recipient_org_id: str
    received_by: str
    sig_alg: str
    key_id: str
    complete: bool
    verified: bool
    verify_error: str
    created_at: datetime
    verified_at: datetime | None


class PackageSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    sender_org_id: str
    sender_org_name: str = ""
    sender_username: str
    status: str
    status_label: str = ""
    expired: bool = False
    file_count: int
    total_size: int
    created_at: datetime
    expires_at: datetime
    received: bool = False  # for a recipient: whether its receipt is recorded


class PackageRead(PackageSummary):
    note: str
    node_code: str
    manifest_sha256: str
    sig_alg: str
    key_id: str
    files: list[FileRead]
    recipients: list[RecipientRead]
    receipts: list[ReceiptRead]
    actions: list[str] = []


class ManifestRead(BaseModel):
    """The signed manifest exactly as signed, with its signature, so a client can check both itself."""

    manifest: dict[str, Any]
    canonical: str
    signature: dict[str, str]
    signer_public_key: dict[str, str]


class ReceivedFile(BaseModel):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sm3: str = Field(pattern=r"^[0-9a-f]{64}$")


class ReceiptIn(BaseModel):
    """Digests the recipient computed over what it downloaded; empty: the platform vouches for its stored copy."""

    files: list[ReceivedFile] | None = None


class ReceiptDocument(BaseModel):
    """A signed receipt as it travels (e.g. back from another node): the canonical document and its signature."""

    document: str
    signature: dict[str, str]


class WithdrawIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class NodeKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: str
    node_code: str
    node_name: str
    is_local: bool
    sig_alg: str
    status: str
    added_by: str
    created_at: datetime


class ExportIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    purpose: str = Field(default="", max_length=2000)
    classification: str = Field(description="须为“非涉密”：涉密数据不得经本通道导出")
    target_node: str = Field(min_length=2, max_length=12)


class DataExportIn(ExportIn):
    resource_id: str = Field(description="本部门已发布目录挂接的数据表（挂接资源 ID）")


class ExportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    purpose: str
    classification: str
    org_id: str
    requested_by: str
    target_node: str
    state: str
    state_label: str = ""
    ticket_id: str | None
    decided_by: str | None
    decided_at: datetime | None
    decision_comment: str
    bundle_id: str | None
    bundle_path: str | None
    exported_at: datetime | None
    files: list[dict[str, Any]]
    data_source: dict[str, Any] = {}
    created_at: datetime


class DecisionIn(BaseModel):
    comment: str = Field(default="", max_length=2000)


class LedgerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    at: datetime
    direction: str
    outcome: str
    bundle_id: str
    source_node: str
    target_node: str
    export_id: str | None
    title: str
    file_count: int
    total_size: int
    reason_code: str
    reason: str
    path: str
    actor: str
