"""File exchange (文件交换) and the secure import/export channel between networks (安全导入导出通道)."""
