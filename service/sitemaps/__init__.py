"""The sitemap publisher: streams URLs into gzip sitemaps and switches them in atomically."""
