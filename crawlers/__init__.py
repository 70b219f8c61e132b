"""Tissu's Scrapy project: spiders that read events from websites (see ``crawlers/README.md``)."""
