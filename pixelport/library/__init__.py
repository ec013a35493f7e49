"""The media library: file bytes behind a storage interface, their records in `pixelport.state`,
uploads, versions, folders, search; knows no HTTP request."""
