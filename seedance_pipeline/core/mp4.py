"""Recognising an MP4 from its first bytes, before a download is stored (no decoding)."""

# Brands are not checked: any ISO-BMFF file (mp4, mov, m4v, 3gp ...) starts with an ftyp box.
_FTYP = b"ftyp"


def looks_like_mp4(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file, >= 8) starts with an ISO-BMFF ``ftyp`` box."""
    if len(head) < 8 or bytes(head[4:8]) != _FTYP:
        return False
    size = int.from_bytes(head[0:4], "big")
    # 1 = 64-bit size follows; otherwise the ftyp box holds at least size+type+major brand+version.
    return size == 1 or size >= 16
