"""The EventBridge form of S3 events, mapped onto the notification event names.

The same change seen through EventBridge and through a notification must get the same
event id, so detail-types (and their `reason` / `deletion-type`) become S3 event names.
"""

from typing import Any

_CREATED_BY_REASON = {
    "PutObject": "ObjectCreated:Put",
    "POST Object": "ObjectCreated:Post",
    "PostObject": "ObjectCreated:Post",
    "CopyObject": "ObjectCreated:Copy",
    "CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
}

_SIMPLE = {
    "Object Restore Initiated": "ObjectRestore:Post",
    "Object Restore Completed": "ObjectRestore:Completed",
    "Object Restore Expired": "ObjectRestore:Delete",
    "Object Tags Added": "ObjectTagging:Put",
    "Object Tags Deleted": "ObjectTagging:Delete",
    "Object ACL Updated": "ObjectAcl:Put",
    "Object Storage Class Changed": "LifecycleTransition",
    "Object Access Tier Changed": "IntelligentTiering",
}


def event_name_for(detail_type: str, detail: dict[str, Any]) -> str:
    """The S3 notification event name for an EventBridge detail-type and detail."""
    reason = detail.get("reason")
    if detail_type == "Object Created":
        if isinstance(reason, str) and reason in _CREATED_BY_REASON:
            return _CREATED_BY_REASON[reason]
        return (
            f"ObjectCreated:{reason}" if isinstance(reason, str) and reason else "ObjectCreated:*"
        )
    if detail_type == "Object Deleted":
        marker = detail.get("deletion-type") == "Delete Marker Created"
        if reason == "Lifecycle Expiration":
            return (
                "LifecycleExpiration:DeleteMarkerCreated"
                if marker
                else "LifecycleExpiration:Delete"
            )
        return "ObjectRemoved:DeleteMarkerCreated" if marker else "ObjectRemoved:Delete"
    if detail_type in _SIMPLE:
        return _SIMPLE[detail_type]
    # S3 adds detail-types over time; keep the event, under a name that says where it came from.
    return "EventBridge:" + detail_type.replace(" ", "")


def is_eventbridge_s3_event(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("source") == "aws.s3"
        and "detail-type" in document
        and "detail" in document
    )
