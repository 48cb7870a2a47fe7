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
    max_request_body_mb: int = Field(
        default=32, ge=1, description="上传文件以外的请求体大小上限（MB）；上传的上限为文件包上限加 16 MB"
    )
    max_inflight_requests: int = Field(
        default=6,
        ge=1,
        description="每个服务进程同时处理的请求上限；其余请求排队等候，不占用数据库连接。"
        "响应开始后即释放名额（下载不占名额），大于 1 MB 的上传不计入",
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
    outbox_retention_days: int = Field(
        default=14, ge=1, le=3650, description="已投递的领域事件在发件箱中保留的天数，之后由每日任务删除"
    )
    # --- gateway (接口服务) ---
    gateway_mount_path: str = Field(default="/gw", description="接口网关在 serve 进程中的挂载路径（调用地址前缀）")
    gateway_public_url: str = Field(
        default="", description="调用方访问网关的地址（如 https://gw.example.gov.cn/gw），用于接口说明与调用示例"
    )
    gateway_clock_skew_s: int = Field(default=300, description="签名时间戳与网关时钟允许的最大偏差（秒）")
    gateway_secret_overlap_hours: int = Field(default=24, description="轮换密钥后旧密钥继续有效的时长（小时）")
    gateway_rate_per_s: int = Field(default=200, description="每个应用调用每个服务的默认速率上限（次/秒）")
    gateway_daily_quota: int = Field(default=1_000_000, description="每个应用调用每个服务的默认每日配额（次）")
    gateway_service_rate_per_s: int = Field(default=0, description="每个服务的默认总速率上限（次/秒，0 为不限）")
    gateway_limits_url: str | None = Field(
        default=None, description="限流与防重放计数存储（redis://…）；默认用 ZHENGSHU_REDIS_URL，均未配置时为进程内存"
    )
    gateway_key_prefix: str = Field(default="zs:gw", description="网关在 Redis 中的键前缀（多套环境共用 Redis 时区分）")
    gateway_refresh_ms: int = Field(default=250, description="各网关进程检查配置与授权变化的间隔（毫秒）")
    gateway_max_request_kb: int = Field(default=1024, description="调用请求体大小上限（KB）")
    gateway_max_response_kb: int = Field(default=4096, description="上游响应大小上限（KB）")
    gateway_upstream_connections: int = Field(default=200, description="每个网关进程到每个上游主机的连接池大小")
    gateway_breaker_failures: int = Field(default=5, description="上游连续失败多少次后熔断")
    gateway_breaker_cooldown_s: float = Field(default=30.0, description="熔断后多久放行一次试探请求（秒）")
    gateway_source_connections: int = Field(default=8, description="生成接口每个数据源的连接池大小（每进程）")
    gateway_max_page_size: int = Field(default=100, description="生成接口列表查询每页最多条数")
    gateway_log_flush_ms: int = Field(default=500, description="调用日志批量写入的间隔（毫秒）")
    gateway_log_batch: int = Field(default=5000, description="调用日志每批最多写入条数")
    # --- end gateway ---
    # --- table exchange (库表交换) ---
    sync_batch_size: int = Field(default=100_000, description="库表交换每批读写的行数（作业可单独设置）")
    sync_batch_pause_ms: int = Field(default=0, description="库表交换每批之间的间隔（毫秒），用于减轻源库压力")
    sync_quarantine_max_rows: int = Field(default=10_000, description="每次运行最多保存的隔离值条数（总数仍全部计入）")
    sync_stale_after_s: int = Field(default=900, description="运行中的作业超过该秒数无进展即视为中断，可由新运行接续")
    sync_due_per_minute: int = Field(default=20, description="定时任务每分钟最多启动的到期作业数")
    sync_parallel_runs: int = Field(
        default=2,
        ge=1,
        le=64,
        description="每个后台进程同时运行的库表交换作业数（各用自己的线程）",
    )
    # --- end table exchange ---
    # --- file exchange and ferry (文件交换、安全摆渡) ---
    files_max_file_mb: int = Field(default=512, description="文件交换单个文件大小上限（MB）")
    files_max_package_mb: int = Field(default=2048, description="文件交换单个文件包总大小上限（MB）")
    files_max_files: int = Field(default=50, description="文件交换单个文件包的文件数上限")
    files_allowed_types: list[str] = Field(
        default=[
            "pdf",
            "ofd",
            "jpg",
            "png",
            "gif",
            "bmp",
            "xlsx",
            "docx",
            "pptx",
            "ole",
            "txt",
            "csv",
            "json",
            "xml",
            "parquet",
            "zip",
            "tar",
            "tgz",
        ],
        description="文件交换与摆渡允许的文件类型（按内容识别，扩展名须与内容一致）",
    )
    files_default_expiry_days: int = Field(default=30, description="文件包默认有效期（天），过期后不能下载并清理")
    files_max_expiry_days: int = Field(default=180, description="文件包有效期上限（天）")
    files_signature_algorithm: str = Field(default="ed25519", description="本节点签名算法：ed25519 或 sm2")
    archive_max_entries: int = Field(default=10000, description="压缩包成员数上限")
    archive_max_uncompressed_mb: int = Field(default=4096, description="压缩包解压后总大小上限（MB）")
    archive_max_ratio: int = Field(default=100, description="压缩比上限（解压后/压缩后），超过视为压缩炸弹")
    archive_allow_nested: bool = Field(default=False, description="是否允许压缩包中再含压缩包")
    ferry_outbox_dir: Path | None = Field(default=None, description="摆渡导出目录；默认为数据目录下 ferry/outbox")
    ferry_inbox_dir: Path | None = Field(default=None, description="摆渡导入目录；默认为数据目录下 ferry/inbox")
    ferry_received_dir: Path | None = Field(default=None, description="导入成功的文件存放目录；默认 ferry/received")
    ferry_quarantine_dir: Path | None = Field(default=None, description="被拒绝的摆渡包隔离目录；默认 ferry/quarantine")
    ferry_max_bundle_mb: int = Field(default=4096, description="单个摆渡包大小上限（MB）")
    ferry_review_days: int = Field(default=2, description="数据主管部门审批摆渡导出申请的时限（工作日）")
    # --- end file exchange ---
    # --- open data (数据开放) ---
    opendata_max_page_size: int = Field(default=1000, description="开放数据接口每页条数上限（超出时返回 400）")  # A
    opendata_query_timeout_s: float = Field(default=10.0, description="开放数据预览与接口单次查询的时限（秒）")  # A
    opendata_duckdb_memory_mb: int = Field(
        default=512, description="开放数据查询与发布所用 DuckDB 的内存上限（MB）"
    )  # A
    opendata_duckdb_threads: int = Field(default=2, description="开放数据查询所用 DuckDB 的线程数")  # A
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
