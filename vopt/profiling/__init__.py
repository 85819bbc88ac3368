"""Where the time goes: per-op timings from each runtime's own profiler (`vopt profile`)."""
