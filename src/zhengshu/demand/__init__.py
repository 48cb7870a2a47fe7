"""Supply and demand (供需对接): data applications and authorizations (共享申请、共享授权), data requests (数据需求)."""
