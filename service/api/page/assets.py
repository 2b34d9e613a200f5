"""The stylesheet, the one file the pages load (no script, no font, nothing from elsewhere)."""

CSS = """
:root { --ink: #1d2330; --muted: #5b6578; --line: #d9dee7; --accent: #5a2ae0; --bad: #b42318; --good: #067647; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f6f7fb; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .7rem 1.5rem; background: #fff; border-bottom: 1px solid var(--line); }
nav { display: flex; gap: 1rem; align-items: center; flex: 1; }
nav a { color: var(--muted); text-decoration: none; }
nav a.current, .window a.current { color: var(--accent); font-weight: 600; }
.logout { margin-left: auto; }
main { padding: 1rem 1.5rem 3rem; max-width: 1400px; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; } h3 { font-size: .95rem; margin: .3rem 0; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; vertical-align: top; padding: .5rem .8rem; border-bottom: 1px solid var(--line); }
thead th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.funnel td { min-width: 9rem; font-variant-numeric: tabular-nums; }
.reasons { list-style: none; margin: .3rem 0 0; padding: 0; font-size: .85rem; }
.reasons .n { color: var(--muted); }
.change { font-size: .8rem; color: var(--muted); } .change.up { color: var(--good); } .change.down { color: var(--bad); }
.failed a, .error { color: var(--bad); }
pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow: auto; max-height: 28rem; font-size: .8rem; white-space: pre-wrap; word-break: break-word; }
.columns { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: .8rem; }
.sample { background: #fff; border: 1px solid var(--line); padding: .2rem 1rem 1rem; margin-bottom: 1rem; }
details { background: #fff; border: 1px solid var(--line); padding: .5rem .8rem; margin-bottom: .4rem; }
.instance { background: #fff; border: 1px solid var(--line); padding: .2rem 1rem .6rem; margin-bottom: .8rem; }
.login { display: flex; flex-direction: column; gap: .8rem; max-width: 22rem; }
input, button { font: inherit; padding: .4rem .6rem; }
"""
