"""Settings from the environment or a `.env` file (prefix ``ZHENGSHU_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZHENGSHU_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("zhengshu-data"), description="数据目录：SQLite、DuckDB 与上传文件")
    database_url: str | None = Field(
        default=None, description="默认为数据目录中的 SQLite；生产用 postgresql+psycopg://…"
    )
    secret_key: str = Field(default="", description="会话签名与凭据加密的主密钥；为空时在数据目录生成")
    node_code: str = Field(default="360000", description="本节点的行政区划代码")
    node_name: str = Field(default="江西省政务数据共享平台")
    cookie_secure: bool = Field(default=False, description="会话 Cookie 仅经 HTTPS 发送（生产应开启）")
    redis_url: str | None = None
    db_pool_size: int = Field(default=20, description="每个服务进程的数据库连接池大小（PostgreSQL）")
    max_inflight_requests: int = Field(
        default=20, description="每个服务进程同时处理的请求上限；其余请求排队等候，不占用数据库连接"
    )
    trust_forwarded_for: bool = Field(default=False, description="位于负载均衡之后时，从 X-Forwarded-For 取来源地址")
    templates_dir: Path | None = Field(default=None, description="覆盖页面模板的目录（按文件名优先）")
    # Time limits are policy (DOMAIN.md): defaults an administrator may change.
    catalog_review_days: int = 5
    catalog_update_days: int = 10
    catalog_recheck_months: int = 12
    application_compliance_days: int = Field(default=2, description="数据主管部门合规审查时限（工作日）")
    application_reply_days: int = Field(default=5, description="提供部门答复有条件共享申请的时限（工作日）")
    demand_reply_days: int = Field(default=10, description="提供部门答复数据需求（编目、挂接并答复）的时限（工作日）")
    application_supplement_days: int = Field(default=10, description="申请人补充材料的时限（工作日）")
    application_appeal_days: int = Field(default=5, description="申请人对答复提出申诉的期限（工作日）")
    coordination_days: int = Field(default=5, description="数据主管部门协调的时限（工作日）")
    objection_reply_days: int = Field(default=5, description="提供部门答复数据异议的时限（工作日）")
    max_attachment_mb: int = Field(default=20, description="异议佐证材料单个文件大小上限（MB）")
    embedded_jobs: bool | None = Field(
        default=None, description="在 serve 进程内运行后台任务；默认在未配置 Redis 时开启（演示与单机部署）"
    )
    process_outbox_inline: bool = Field(default=True, description="请求提交后就地处理领域事件（嵌入式默认）")
    # --- gateway (接口服务) ---
    # --- end gateway ---
    # --- table exchange (库表交换) ---
    # --- end table exchange ---
    # --- file exchange and ferry (文件交换、安全摆渡) ---
    # --- end file exchange ---
    # --- open data (数据开放) ---
    open_quota_per_day: int = Field(  # B
        default=1000, description="开放数据：每个 API Key（或登录账号）每日可调用与下载的次数（按北京时间自然日）"
    )
    open_quota_storage: str | None = Field(  # B
        default=None, description="开放数据配额计数存储（limits 库 URI）；默认有 Redis 时用 Redis，否则 memory://"
    )
    open_application_reply_days: int = Field(  # B
        default=10, description="提供部门答复有条件开放申请的时限（工作日）"
    )
    open_grant_max_days: int = Field(default=365, description="有条件开放授权的最长期限（天）")  # B
    # --- end open data ---

    def runs_embedded_jobs(self) -> bool:
        return self.redis_url is None if self.embedded_jobs is None else self.embedded_jobs

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'zhengshu.db').resolve()}"

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key_file = self.data_dir / "secret.key"
        if not key_file.exists():
            import secrets

            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        self.secret_key = key_file.read_text().strip()
        return self.secret_key


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
