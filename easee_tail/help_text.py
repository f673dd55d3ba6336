"""The examples that end each command's help.

tests/test_help.py parses every one of them, as it does README's.
"""

from __future__ import annotations


def _examples(*rows: tuple[str, str]) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {command}\n      {why}" for command, why in rows)


# click prints an epilog as it is after \b.
EXAMPLES = {
    'tail': _examples(
        ('easee-tail --token "$EASEE_TOKEN"',
         'your chargers, live (a table, or JSON lines when piped)'),
        ('easee-tail -s EH8KWDB8 -o ChargerOpMode,ReasonForNoCurrent -f short',
         'why is it not charging?'),
        ('easee-tail -e -j -w backlog.jsonl',
         'what was waiting, saved, then exit'),
    ),
    'demo': _examples(
        ('easee-tail demo',
         'a simulated fleet in the live table'),
        ('easee-tail demo --view state --chargers 3',
         'the latest values per charger'),
        ("easee-tail demo -j -c 20 | jq -c '{charger, name, value}'",
         'JSON lines for jq'),
    ),
    'replay': _examples(
        ('easee-tail replay monday.jsonl --speed 10',
         'a capture at ten times its pace'),
        ('easee-tail replay monday.jsonl -s EH8KWDB8 -o 109 -f short',
         "one charger's op modes, as lines"),
        ('easee-tail -j | easee-tail replay -',
         'from stdin'),
    ),
    'timeline': _examples(
        ('easee-tail timeline monday.jsonl -s EH8KWDB8',
         'what changed on one charger, and for how long each state held'),
        ("easee-tail timeline monday.jsonl --since '2026-11-24T14:00' --until 16:00 -o 109",
         'its op modes in a window'),
        ('easee-tail -j | easee-tail timeline --json',
         'from stdin, as JSON lines'),
    ),
    'sessions': _examples(
        ('easee-tail sessions monday.jsonl',
         'every charging session, and how each ended'),
        ("easee-tail sessions monday.jsonl -s EH8KWDB8 | jq -r .ended",
         "why did this charger stop?"),
    ),
    'connection': _examples(
        ('easee-tail connection',
         'the details, password masked'),
        ('easee-tail connection --json --show-secrets | jq -r .url',
         'a URL for other tools'),
    ),
    'doctor': _examples(
        ('easee-tail doctor',
         'every step from the API to the queue'),
        ('easee-tail doctor --jsonl | jq -r \'select(.status != "pass") | .check\'',
         'what failed'),
    ),
    'profiles': _examples(
        ('easee-tail profiles',
         'the config file and its profiles'),
        ('easee-tail --profile work --view state',
         'use one'),
    ),
    'logout': _examples(
        ('easee-tail logout',
         'forget every cached token'),
        ('easee-tail logout --username partner@example.com',
         "one login's"),
    ),
    'simulate': _examples(
        ('easee-tail simulate --amqp-url amqps://guest:guest@localhost:5671/ --queue test.Q',
         'a fleet into a queue'),
        ('easee-tail simulate --amqp-url "$URL" --exchange amq.topic --rate 200 --duration 1m',
         'into an exchange, for a minute'),
    ),
    'completion': _examples(
        ('easee-tail completion bash > ~/.local/share/bash-completion/completions/easee-tail',
         'bash'),
        ('easee-tail completion fish > ~/.config/fish/completions/easee-tail.fish',
         'fish'),
    ),
    'observations': _examples(
        ('easee-tail observations',
         'the catalogue'),
        ('easee-tail observations --all | grep -i temp',
         "with Easee's wider list"),
        ('easee-tail observations ChargerOpMode 96',
         'two in full, with their values'),
        ("easee-tail observations --json | jq '.[].name'",
         'for programs'),
    ),
}
