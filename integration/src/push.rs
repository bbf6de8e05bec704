//! Pushes test images to a registry through the distribution HTTP API v2.
//!
//! A deliberately small blocking HTTP/1.1 client over `TcpStream` (plain HTTP to loopback is
//! all the tests need): one request per connection, optional basic auth. Pushing by hand
//! rather than with skopeo lets tests upload exactly the bytes they want, malformed included.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;

use crate::image::{Blob, BuiltImage, BuiltIndex};

/// One HTTP response, body read in full.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client for one registry (`host:port`), plain HTTP.
#[derive(Clone, Debug)]
pub struct Client {
    addr: String,
    authorization: Option<String>,
}

impl Client {
    pub fn new(addr: &str) -> Client {
        Client {
            addr: addr.to_string(),
            authorization: None,
        }
    }

    /// Sends `Authorization: Basic` with every request.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Client {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(format!("Basic {token}"));
        self
    }

    /// Sends `Authorization: Bearer TOKEN` with every request.
    pub fn bearer(mut self, token: &str) -> Client {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }

    /// A client for `reg`, with its credentials if it has any.
    pub fn for_registry(reg: &crate::registry::Registry) -> Client {
        let c = Client::new(&reg.addr());
        match reg.credentials() {
            Some((u, p)) => c.basic_auth(u, p),
            None => c,
        }
    }

    /// One request; `path` is the absolute path plus query.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: mocker-integration\r\n",
            self.addr
        );
        if let Some(a) = &self.authorization {
            req.push_str(&format!("Authorization: {a}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "GET" && method != "HEAD" || !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse_response(&raw, method == "HEAD")
    }

    /// Does the repository have this blob?
    pub fn has_blob(&self, repo: &str, digest: &str) -> io::Result<bool> {
        let r = self.request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])?;
        Ok(r.status == 200)
    }

    /// Uploads `data` under `digest` (which need not be its real digest: the registry checks
    /// and the caller sees the refusal). POST a session, then PUT the bytes with `?digest=`.
    pub fn upload_blob(&self, repo: &str, digest: &str, data: &[u8]) -> io::Result<()> {
        let r = self.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])?;
        if r.status != 202 {
            return Err(http_error("start blob upload", repo, &r));
        }
        let location = r
            .header("Location")
            .ok_or_else(|| io::Error::other("blob upload: no Location header"))?;
        let mut path = strip_origin(location).to_string();
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str("digest=");
        path.push_str(digest);
        let r = self.request(
            "PUT",
            &path,
            &[("Content-Type", "application/octet-stream")],
            data,
        )?;
        if r.status != 201 {
            return Err(http_error(&format!("upload blob {digest}"), repo, &r));
        }
        Ok(())
    }

    /// Uploads a blob unless the repository already has it.
    pub fn push_blob(&self, repo: &str, blob: &Blob) -> io::Result<()> {
        if self.has_blob(repo, &blob.digest)? {
            return Ok(());
        }
        self.upload_blob(repo, &blob.digest, &blob.data)
    }

    /// PUTs a manifest (or index) under a tag or digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        data: &[u8],
    ) -> io::Result<()> {
        let r = self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            data,
        )?;
        if r.status != 201 {
            return Err(http_error(&format!("put manifest {reference}"), repo, &r));
        }
        Ok(())
    }

    /// Pushes layers, config and manifest, tagging the manifest `tag`.
    pub fn push_image(&self, repo: &str, tag: &str, image: &BuiltImage) -> io::Result<()> {
        for layer in &image.layers {
            self.push_blob(repo, &layer.blob)?;
        }
        self.push_blob(repo, &image.config)?;
        self.put_manifest(repo, tag, &image.manifest.media_type, &image.manifest.data)
    }

    /// Pushes every image of an index by digest, then the index under `tag`.
    pub fn push_index(&self, repo: &str, tag: &str, index: &BuiltIndex) -> io::Result<()> {
        for (_, image) in &index.images {
            self.push_image(repo, &image.manifest.digest, image)?;
        }
        self.put_manifest(repo, tag, &index.index.media_type, &index.index.data)
    }

    /// Deletes a manifest by digest (the registry allows deletes).
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> io::Result<()> {
        let r = self.request(
            "DELETE",
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            &[],
        )?;
        if r.status != 202 {
            return Err(http_error(&format!("delete manifest {digest}"), repo, &r));
        }
        Ok(())
    }

    /// Fetches a manifest with the given Accept header: (status, content type, body).
    pub fn get_manifest(&self, repo: &str, reference: &str, accept: &str) -> io::Result<Response> {
        self.request(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", accept)],
            &[],
        )
    }
}

fn http_error(what: &str, repo: &str, r: &Response) -> io::Error {
    io::Error::other(format!(
        "{what} in {repo}: HTTP {}: {}",
        r.status,
        String::from_utf8_lossy(&r.body).trim()
    ))
}

/// `http://host:port/v2/...` -> `/v2/...`; paths stay as they are.
fn strip_origin(location: &str) -> &str {
    match location.find("://") {
        Some(i) => {
            let rest = &location[i + 3..];
            rest.find('/').map(|j| &rest[j..]).unwrap_or("/")
        }
        None => location,
    }
}

fn parse_response(raw: &[u8], head_only: bool) -> io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("HTTP response without end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(io::Error::other)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad HTTP status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("Transfer-Encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if head_only {
        body.clear();
    } else if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| io::Error::other("bad chunked body"))?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(io::Error::other)?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size_text:?}")))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(io::Error::other("truncated chunked body"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_plain_responses() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        let r = parse_response(
            b"HTTP/1.1 202 Accepted\r\nLocation: http://h:1/v2/x?a=b\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(strip_origin(r.header("location").unwrap()), "/v2/x?a=b");
    }
}
