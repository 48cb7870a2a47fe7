"""Interface services: the data-sharing API gateway (接口服务子系统)."""
