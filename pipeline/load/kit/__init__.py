"""The load kit: what every target shares, each piece written once.

- :mod:`.phones`: one phone normaliser for comparing a file's phone with an API's;
- :mod:`.paging`: a paginator per pagination style (cursor; page/limit), with a loop guard;
- :mod:`.timing`: one time model for every plan (least time under a documented rate limit);
- :mod:`.pool`: one bounded worker pool;
- :mod:`.jobs`: one follower of asynchronous jobs (poll, stall timeout);
- :mod:`.lookup`: rows -> contact ids, with the cost rule (list everything vs search each);
- :mod:`.export`: filters an API does not offer refused before any request; each contact once;
- :mod:`.groups`: groups by name in any case, created once;
- :mod:`.steps`: the loops of import, delete and group changes: batches sent one after the
  other, "fail the request in flight, then abort", the safety limit and dry runs;
- :mod:`.state`: the sync state's side of an import (rows skipped, confirmations recorded as
  they come, resume, mirror), asking :mod:`contactpipe.state`.

Targets compose these; nothing here names a target.
"""
