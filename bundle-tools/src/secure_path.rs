//! Resolving untrusted paths inside a root directory without ever escaping it.
