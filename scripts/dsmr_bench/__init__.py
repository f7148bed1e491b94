"""Side-by-side benchmark of this integration against Home Assistant core's `dsmr`.

`python -m dsmr_bench` (or `scripts/bench`) runs every measurement in one go on the same
machine and the same telegrams, and prints one table with ratios:

1. CPU per telegram (DSMR 5 and 5B): dsmr_parser's `TelegramParser.parse` alone, our reader
   alone, and each integration end to end in a real Home Assistant (bytes on a real TCP socket
   to entity states written), with its default entities and with all entities enabled;
2. idle cost at real rate: CPU per second with a meter sending one telegram a second over a
   real pty;
3. writes: state changes per hour at default settings, and the error of the published mean
   power against the true mean of all telegrams;
4. scale: 1, 10 and 50 meters at one telegram a second in one Home Assistant;
5. setup latency: config-flow form submitted to entry created;
6. recorder: database growth per hour of meter time with Home Assistant's recorder, at default
   settings and with a 0 s window, and the hourly long-term statistics of both compared;
7. re-broadcast: CPU to publish one telegram to 0, 1 and 5 TCP clients (ours only).

Each Home Assistant runs in a subprocess of its own (`dsmr_bench.worker`), so its CPU time is
its own; the meters are simulated in the parent process. Ours and core run interleaved (or at
the same time) so that load from other work on the machine hits both alike.
"""
