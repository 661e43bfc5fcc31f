"""The roster of a call and the media source id -> participant map
(https://learn.microsoft.com/graph/api/resources/participant, roster notifications as in
https://learn.microsoft.com/graph/api/resources/commsnotification)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .graph import models as m

log = logging.getLogger("bot.roster")


@dataclass
class RosterChange:
    added: list[m.Participant] = field(default_factory=list)
    updated: list[m.Participant] = field(default_factory=list)
    removed: list[m.Participant] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class Roster:
    """Participants of a call, kept from roster notifications (``…/participants`` updates whose
    resourceData is an array of participants).

    ``mode``: ``"auto"`` (default) treats a roster array that contains the bot's own
    participant as the full roster (others missing from it have left) and any other array as
    a partial update; ``"full"`` and ``"partial"`` force one reading. A ``deltaParticipants``
    batch is always a delta, applied in ``sequenceNumber`` order; a participant with
    ``removedState`` set is removed in every mode.
    """

    def __init__(self, *, mode: str = "auto") -> None:
        if mode not in ("auto", "full", "partial"):
            raise ValueError(f"roster mode must be auto, full or partial, not {mode!r}")
        self.mode = mode
        self.participants: dict[str, m.Participant] = {}
        self.sequence_number: int | None = None
        self._anonymous = 0
        self.source_map: dict[str, m.Participant] = {}

    def __len__(self) -> int:
        return len(self.participants)

    def __iter__(self):
        return iter(self.participants.values())

    def get(self, participant_id: str) -> m.Participant | None:
        return self.participants.get(m.id_key(participant_id))

    def participant_for_source(self, source_id: str | int) -> m.Participant | None:
        """The participant sending media stream ``sourceId`` (the media layer's lookup)."""
        return self.source_map.get(str(source_id))

    def _key(self, p: m.Participant) -> str:
        if p.id:
            return m.id_key(p.id)
        # invite roster entries may have id null: key by identity until the id is known
        ident = (
            p.info.identity.primary()
            if isinstance(p.info, (m.ParticipantInfo, m.InvitationParticipantInfo))
            and isinstance(p.info.identity, m.IdentitySet)
            else None
        )
        if ident and ident[1].id:
            return f"identity:{ident[0]}:{ident[1].id.lower()}"
        self._anonymous += 1
        return f"anonymous:{self._anonymous}"

    def apply(self, data: Any, *, my_participant_id: str | None = None) -> RosterChange:
        if isinstance(data, m.DeltaParticipants):
            seq = data.sequence_number if isinstance(data.sequence_number, int) else None
            if seq is not None and self.sequence_number is not None and seq <= self.sequence_number:
                log.debug("stale delta roster %s <= %s ignored", seq, self.sequence_number)
                return RosterChange()
            if seq is not None:
                self.sequence_number = seq
            return self._upsert(
                [p for p in data.participants or [] if isinstance(p, m.Participant)], full=False
            )
        if isinstance(data, m.Participant):
            data = [data]
        if not isinstance(data, list):
            return RosterChange()
        if any(isinstance(d, m.DeltaParticipants) for d in data):
            # resourceData as a collection holding deltaParticipants batch(es)
            total = RosterChange()
            for d in data:
                step = self.apply(d, my_participant_id=my_participant_id)
                total.added += step.added
                total.updated += step.updated
                total.removed += step.removed
            return total
        parts = [p for p in data if isinstance(p, m.Participant)]
        full = self.mode == "full" or (
            self.mode == "auto"
            and my_participant_id is not None
            and any(p.id and m.id_key(p.id) == m.id_key(my_participant_id) for p in parts)
        )
        return self._upsert(parts, full=full)

    def replace_all(self, parts: Sequence[m.Participant]) -> RosterChange:
        """Apply a complete list (from ``GET …/participants``)."""
        return self._upsert(list(parts), full=True)

    def _upsert(self, parts: list[m.Participant], *, full: bool) -> RosterChange:
        change = RosterChange()
        seen: set[str] = set()
        for p in parts:
            key = self._key(p)
            if p.id:  # a participant first seen with id null, now known: drop the placeholder
                ident = self._identity_key(p)
                if ident and ident in self.participants and ident != key:
                    self.participants.pop(ident)
            seen.add(key)
            if p.removed_state is not None:
                old = self.participants.pop(key, None)
                if old is not None:
                    change.removed.append(p)
                continue
            if key in self.participants:
                if self.participants[key].to_dict() != p.to_dict():
                    change.updated.append(p)
            else:
                change.added.append(p)
            self.participants[key] = p
        if full:
            for key in [k for k in self.participants if k not in seen]:
                change.removed.append(self.participants.pop(key))
        if change:
            self._rebuild_source_map()
        return change

    def _identity_key(self, p: m.Participant) -> str | None:
        info = p.info
        if isinstance(info, (m.ParticipantInfo, m.InvitationParticipantInfo)) and isinstance(
            info.identity, m.IdentitySet
        ):
            ident = info.identity.primary()
            if ident and ident[1].id:
                return f"identity:{ident[0]}:{ident[1].id.lower()}"
        return None

    def _rebuild_source_map(self) -> None:
        smap: dict[str, m.Participant] = {}
        for p in self.participants.values():
            for stream in p.media_streams or []:
                if isinstance(stream, m.MediaStream) and stream.source_id is not None:
                    smap[str(stream.source_id)] = p
        self.source_map = smap


__all__ = ["Roster", "RosterChange"]
