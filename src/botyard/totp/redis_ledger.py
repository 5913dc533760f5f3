"""The TOTP ledger in Redis or Valkey: one Lua script moves an account's step forward only."""

from __future__ import annotations

from typing import Any

from botyard.totp.ledger import ProviderFigures

# KEYS[1] the account's hash, KEYS[2] the set of accounts; ARGV: step, provider, account.
_CLAIM = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last_step') or '-1')
if tonumber(ARGV[1]) > last then
  redis.call('HSET', KEYS[1], 'last_step', ARGV[1], 'provider', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'issued', 1)
  redis.call('SADD', KEYS[2], ARGV[3])
  return 1
end
return 0
"""


class RedisLedger:
    """Same contract as ``SqlLedger``; the script runs atomically on the server."""

    def __init__(self, client: Any, *, prefix: str = "botyard:totp:") -> None:
        # A redis.Redis with decode_responses=True (redis-py; Valkey speaks the same protocol).
        self.client = client
        self.prefix = prefix
        self._claim = client.register_script(_CLAIM)

    def _key(self, account: str) -> str:
        return f"{self.prefix}account:{account}"

    @property
    def _accounts(self) -> str:
        return f"{self.prefix}accounts"

    def claim(self, account: str, provider: str, step: int) -> bool:
        keys = [self._key(account), self._accounts]
        return bool(self._claim(keys=keys, args=[step, provider, account]))

    def consumed(self, account: str, success: bool) -> None:
        if self.client.exists(self._key(account)):
            self.client.hincrby(self._key(account), "succeeded" if success else "failed", 1)

    def figures(self) -> list[ProviderFigures]:
        totals: dict[str, list[int]] = {}
        for raw in sorted(self.client.smembers(self._accounts)):
            account = raw.decode() if isinstance(raw, bytes) else str(raw)
            row = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in self.client.hgetall(self._key(account)).items()
            }
            if not row:
                continue
            sums = totals.setdefault(row["provider"], [0, 0, 0])
            for index, name in enumerate(("issued", "succeeded", "failed")):
                sums[index] += int(row.get(name, 0))
        return [ProviderFigures(p, *sums) for p, sums in sorted(totals.items())]
