# Maintainer's tool for peer_test.cc's divergence table (not run by the tests): renders every template x
# case of cases.json with Python's jinja2 set up as HF's apply_chat_template sets it up, runs jinja_peer.mjs,
# and prints each case where the peers disagree with each other or with Python, and which peer Python matches.
#
#   NODE_DIR=<dir with the npm packages> python3 arbiter.py [TEMPLATE ...] [V=-v for the three outputs]
import json, sys, glob, os, subprocess, tempfile
from datetime import datetime
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
from jinja2.exceptions import TemplateError
P = os.path.dirname(os.path.abspath(__file__))
TMP = tempfile.mkdtemp()
def raise_exception(m): raise TemplateError(m)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters['tojson'] = tojson
env.globals['raise_exception'] = raise_exception
env.globals['strftime_now'] = lambda f: datetime.now().strftime(f)
cases = json.load(open(P + '/cases.json'))['cases']
names = sorted(os.path.basename(f)[:-6] for f in glob.glob(P + '/templates/*.jinja'))
only = sys.argv[1:] 
tpls = [{"name": n, "source": open(f'{P}/templates/{n}.jinja').read()} for n in names if not only or n in only]
if not only or 'published_deepseek_v3' in only: tpls.append({"name": "published_deepseek_v3", "published": "deepseek-v3"})
json.dump({"templates": tpls, "contexts": [c['context'] for c in cases]}, open(TMP + '/in.json', 'w'))
subprocess.run(['node', P + '/jinja_peer.mjs', os.environ['NODE_DIR'], TMP + '/in.json', TMP + '/out.json'], check=True)
out = json.load(open(TMP + '/out.json'))
print(out['versions'])
def py(src, ctx):
    try: return {"out": env.from_string(src).render(**ctx)}
    except Exception as e: return {"error": type(e).__name__ + ': ' + str(e)}
def same(a, b): return ('error' in a and 'error' in b) or a.get('out') == b.get('out')
for t in out['templates']:
    nerr = 0
    for c, r in zip(cases, t['results']):
        ctx = dict(c['context'])
        if 'bos_token' in t: ctx['bos_token'] = t['bos_token']; ctx['eos_token'] = t['eos_token']
        p = py(t['source'], ctx)
        h, m = r['hf'], r['mj']
        if 'error' in p: nerr += 1
        if same(h, m) and same(h, p): continue
        tag = 'hf' if same(h, p) else 'mj' if same(m, p) else 'NONE'
        print(f"{t['name']:14} {c['name']:32} python={tag}")
        if '-v' in os.environ.get('V', ''):
            print('   py:', json.dumps(p, ensure_ascii=False)[:300]); print('   hf:', json.dumps(h, ensure_ascii=False)[:300]); print('   mj:', json.dumps(m, ensure_ascii=False)[:300])
    print(f"== {t['name']}: python errors on {nerr}/{len(cases)}")
