"""Scrapy settings of Tissu's crawlers (https://docs.scrapy.org/en/latest/topics/settings.html).

Polite by default: robots.txt obeyed, AutoThrottle on with one request at a time per site and a
one-second starting delay, the project's honest User-Agent, no cookies, no telnet console or remote-control server. A
crawl stops after ``DEPTH_LIMIT`` link levels, ``CLOSESPIDER_PAGECOUNT`` pages or
``CLOSESPIDER_TIMEOUT`` seconds; ``crawlers.run`` overrides these from Tissu's settings
(``TISSU_CRAWL_DEPTH``, ``TISSU_CRAWL_MAX_PAGES``, ``TISSU_CRAWL_TIMEOUT``, ``TISSU_CRAWL_DELAY``).
Every request (redirects and robots.txt included) passes the URL guard
``crawlers.middlewares.UrlGuardMiddleware``.
"""

import tissu

BOT_NAME = "tissu"
SPIDER_MODULES = ["crawlers.spiders"]
NEWSPIDER_MODULE = "crawlers.spiders"

USER_AGENT = tissu.USER_AGENT
ROBOTSTXT_OBEY = True
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # Scrapy 2.19's local HTTP control server: not wanted either

AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_DELAY = 1.0
CONCURRENT_REQUESTS = 4
CONCURRENT_REQUESTS_PER_DOMAIN = 1

DEPTH_LIMIT = 2
CLOSESPIDER_PAGECOUNT = 50
CLOSESPIDER_TIMEOUT = 300

DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 20 * 1024 * 1024
DOWNLOAD_WARNSIZE = 5 * 1024 * 1024
REDIRECT_MAX_TIMES = 5
RETRY_TIMES = 2
HTTPCACHE_ENABLED = False

DOWNLOADER_MIDDLEWARES = {
    # before RobotsTxtMiddleware (100): robots.txt of a refused host is never fetched either
    "crawlers.middlewares.UrlGuardMiddleware": 50,
}
ITEM_PIPELINES = {
    "crawlers.pipelines.EventValidationPipeline": 100,
    "crawlers.pipelines.JsonLinesWriterPipeline": 900,
}

LOG_LEVEL = "WARNING"
FEED_EXPORT_ENCODING = "utf-8"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
