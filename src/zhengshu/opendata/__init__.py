"""Open-data portal for the public (数据开放系统)."""
