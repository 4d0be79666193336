//! The review envelope read with `json::Reader`, the object decoded as its kind on the way. Whatever the
//! reader gives up on is read by the serde `Envelope`, which also names the field of an error.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::{Envelope, GroupVersionKind, ObjectValue, RequestEnvelope, UserInfo};
use crate::json::{Bail, Read, Reader, fields, list, opt, string};
use crate::workload::{WorkloadKind, fast::workload};

fn text<'a>(r: &mut Reader<'a>) -> Read<Option<Cow<'a, str>>> {
    opt(r, Reader::str)
}

/// A value's text as serde_json's borrowed `RawValue`.
fn raw<'a>(r: &mut Reader<'a>) -> Read<&'a RawValue> {
    serde_json::from_str(r.raw()?).map_err(|_| Bail)
}

/// The whole body, or `None` to have serde read it.
pub(super) fn envelope(text_: &str) -> Option<Envelope<'_>> {
    let mut r = Reader::new(text_);
    let mut envelope = Envelope {
        api_version: None,
        kind: None,
        request: None,
    };
    fields!(r, {
        "apiVersion" => envelope.api_version = text(r)?,
        "kind" => envelope.kind = text(r)?,
        "request" => envelope.request = opt(r, request)?,
    })
    .ok()?;
    r.end().ok()?;
    Some(envelope)
}

fn request<'a>(r: &mut Reader<'a>) -> Read<RequestEnvelope<'a>> {
    let mut q = RequestEnvelope::default();
    // The objects are decoded as the request's kind. The API server writes `kind` first; should an object
    // come before it, its text is kept and decoded once the kind is known.
    let mut later: [Option<&'a str>; 2] = [None, None];
    fields!(r, {
        "uid" => q.uid = text(r)?,
        "kind" => q.kind = opt(r, group_version_kind)?,
        "subResource" => q.sub_resource = text(r)?,
        "name" => q.name = text(r)?,
        "namespace" => q.namespace = text(r)?,
        "operation" => q.operation = text(r)?,
        "userInfo" => q.user_info = opt(r, user_info)?,
        "dryRun" => q.dry_run = opt(r, Reader::bool)?,
        "options" => q.options = opt(r, raw)?,
        "object" => q.object = object(r, &q, &mut later[0])?,
        "oldObject" => q.old_object = object(r, &q, &mut later[1])?,
    })?;
    for (i, text) in later.into_iter().enumerate() {
        if let Some(text) = text {
            let mut inner = Reader::new(text);
            let value = decode(&mut inner, &q)?;
            inner.end()?;
            if i == 0 {
                q.object = value;
            } else {
                q.old_object = value;
            }
        }
    }
    Ok(q)
}

/// An object before the kind is known is kept as text (`later`) and comes back `None` for now.
fn object<'a>(
    r: &mut Reader<'a>,
    q: &RequestEnvelope<'a>,
    later: &mut Option<&'a str>,
) -> Read<Option<ObjectValue<'a>>> {
    if q.kind.is_none() {
        if !r.null()? {
            *later = Some(r.raw()?);
        }
        return Ok(None);
    }
    decode(r, q)
}

fn decode<'a>(r: &mut Reader<'a>, q: &RequestEnvelope<'a>) -> Read<Option<ObjectValue<'a>>> {
    let covered = q
        .kind
        .as_ref()
        .and_then(|k| WorkloadKind::from_group_kind(&k.group, &k.kind));
    match covered {
        Some(kind) => Ok(workload(r, kind)?.map(ObjectValue::Decoded)),
        None => opt(r, raw).map(|raw| raw.map(ObjectValue::Raw)),
    }
}

fn group_version_kind<'a>(r: &mut Reader<'a>) -> Read<GroupVersionKind<'a>> {
    let mut gvk = GroupVersionKind::default();
    fields!(r, {
        "group" => gvk.group = r.str()?,
        "kind" => gvk.kind = r.str()?,
    })?;
    Ok(gvk)
}

fn user_info(r: &mut Reader<'_>) -> Read<UserInfo> {
    let mut u = UserInfo::default();
    fields!(r, {
        "username" => u.username = opt(r, string)?,
        "groups" => u.groups = opt(r, |r| list(r, string))?,
    })?;
    Ok(u)
}
