"""The image API and the sitemap job, the code that runs inside the container image."""
