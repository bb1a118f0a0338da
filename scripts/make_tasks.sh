#!/usr/bin/env bash
# make_tasks.sh -- build a small, reproducible audio corpus for development: an
# unlabeled pre-training set plus three labelled downstream tasks (kws, instrument,
# pitch). Every sound comes from real engines (espeak-ng, flite, festival, SAM,
# fluidsynth with General MIDI soundfonts) or from real recordings that ship in
# Debian packages; our own code only picks, mixes, crops, resamples and writes
# MIDI note lists.
#
# Run it from the repository root (experiments/make_tasks.yaml reads ../tasks_small):
#     scripts/make_tasks.sh ../tasks_small small   # OUT: any output directory
#     scripts/make_tasks.sh OUT tiny               # a tenth of small, for smoke tests
#   sizes: tiny 0.1x, small 1x, medium 3x, large 10x (the counts below are for small)
# Needs Debian bookworm with apt (root or sudo, to install the engines if they are
# missing) and python3; numpy goes into a venv in the cache if python3 lacks it.
# node + npm are optional (the SAM voices). Data packages are only downloaded and
# unpacked into the cache (apt-get download + dpkg-deb -x), never installed.
#
# Time on 2 cores with the engines already installed, from an empty cache (which
# includes downloading 0.69 GB of .debs and building the numpy venv):
#   tiny about 75 s; small about 3 min (setup 40 s, generation 2 min, probe 8 s).
#   With a warm cache: tiny about 20 s, small about 2 min.
# Disk: small writes 0.44 GB of wav (pretrain 226 MB, instrument 101, kws 74, pitch 37);
#   tiny 42 MB. The cache (OUT/_cache) grows to about 1.5 GB for small: 0.76 GB unpacked
#   packages, 0.4 GB decoded sources, 0.2 GB TTS, 0.1 GB venv.
#
# Knobs (environment variables):
#   SEED=20261124   every choice (clips, parameters, splits) is a function of SEED: the
#                   same SEED and the same Debian package versions give byte-identical output
#   JOBS=2          worker processes
#   WITH_SAM=1      1 = also use the SAM (1982) speech engine from the npm package sam-js
#   WITH_MBROLA=0   1 = also install mbrola with its us1/us2/us3/en1 diphone voices (recorded
#                   from real speakers). They are in Debian contrib/non-free, which is reached
#                   through a private apt source list: the system's apt setup is left untouched.
#   PROBE=1         1 = run the bag-of-frames probe and write probe.json
#   CACHE=OUT/_cache    unpacked packages, TTS and decode caches, venv
#   KEEP_CACHE=1    0 = delete the TTS and decode caches at the end (keeps the unpacked packages)
#
# Output (all audio is 16 kHz mono 16-bit PCM WAV):
#   OUT/<task>/wav/*.wav
#   OUT/<task>/labels.csv   path,label,split   split is train, valid or test
#   OUT/<task>/meta.csv     path,group,source  group is the held-out factor (see below)
#                           (paths in both are relative to OUT/<task>/)
#   OUT/pretrain/*.wav and OUT/pretrain.csv   path,category,source,seconds (paths relative to OUT)
#   OUT/manifest.json   counts per split and label, groups per split, the train/test group
#                       overlap (0 by construction), timings and sizes
#   OUT/probe.json      the probe's accuracy per task and split
#   OUT/README.md       a short description of all this
#
# The tasks. In each, the valid and test splits hold out one factor: no `group` value
# of the test split occurs in train (manifest.json checks it).
#
#   kws: keyword spotting in the style of Speech Commands. 1 s clips, 12 labels;
#     200 voices x 12 clips = 2,400 clips, every label equally often in every split.
#     yes no up down left right on off stop go: that word is spoken.
#     _unknown_: one of 25 other words (bed, bird, cat, ..., zero, backward, forward,
#                follow, learn, visual) is spoken.
#     _silence_: nobody speaks, there is only background.
#     Every "speaker" is a synthetic voice: espeak-ng (8 English accents, 20 % of voices
#     English with a foreign accent, about 100 voice variants, random speed and pitch),
#     flite (5 voices), festival (3 voices), SAM and, if enabled, mbrola. Each voice also
#     gets a random vocal-tract factor (0.9-1.1). A voice says each keyword once, plus
#     one unknown word, and also has one silence clip. Half the clips get a random EQ.
#     80 % get a real background at 3-25 dB SNR: music on hold, game music, Sonic Pi
#     ambience or loops, keyboard typing, or coloured noise.
#     Held out: the voice. espeak-ng voice variants go to valid (10 %) or test (20 %) by a
#     hash of SEED and the variant's name; flite: awb test, kal16 valid; festival: ked test,
#     cmu_us_slt_arctic_hts valid; SAM: by a hash of its settings; mbrola: us2 test, en1 valid.
#     A _silence_ clip takes its voice's split; background recordings are shared by all
#     splits. Split sizes follow the voices: 1,572 / 492 / 336 clips at SEED=20261124.
#
#   instrument: 1.5 s single notes (held 1 s), 11 labels, 200 clips per label split
#     140/20/40 (train/valid/test), 2,200 in all. The labels are NSynth's instrument
#     families, defined by General MIDI program numbers:
#     keyboard 0-7, mallet 8-15, organ 16-20, reed 21-23 and 64-71, guitar 24-31,
#     bass 32-39, string 40-46 and 48-51, vocal 52-54, brass 56-63, flute 72-79,
#     synth_lead 80-87. Notes are rendered with fluidsynth within each family's usual
#     range, at velocities 40-127.
#     Held out: the soundfont. train FluidR3_GM and MuseScore_General_Lite, valid
#     sf_GMbank, test TimGM6mb.
#
#   pitch: 1 s notes from C3 to B5, 12 labels C C# D D# E F F# G G# A A# B: the
#     note's pitch class, whatever its octave. About 100 clips per label, split 70/10/20
#     (about 1,200 in all), from pitched GM programs (every instrument family except
#     bass) on all 4 soundfonts, at velocities 50-120.
#     Held out: the GM program. 20 % of the programs (drawn by SEED) occur only in test,
#     10 % only in valid.
#
#   pretrain: unlabeled clips of 1-4 s (small: 3,000 clips, about 2 h). Shares:
#     real speech 25 % (Asterisk telephone prompts in 5 languages, Fish Fillets voice
#     acting in Czech and Dutch, KLettres spoken letters, Hedgewars voice packs);
#     TTS 20 % (espeak-ng reading human-translated UI strings of Debian's
#     gettext catalogs in about 37 languages, and English flite, festival and SAM voices);
#     MIDI music 17 % (random phrases with melody, bass, chords and drums, rendered on
#     FluidR3_GM and MuseScore_General_Lite); game music and music on hold 10 %; Sonic Pi
#     loops 3 %; Hydrogen drum-kit patterns 4 %; pipe organ 2 %; other sounds 19 %
#     (Sonic Pi samples, game sound effects, keyboard typing).
#     Pretrain contains no valid/test voice of kws and no valid/test soundfont of
#     instrument. Its music may use any GM program, including programs that pitch
#     holds out of train.
#
# Probe: the mean and std over time of a 64-band log-mel (25 ms windows, 10 ms hop),
# standardised on train, fed to a multinomial logistic regression with its L2 chosen on
# valid. This is the bag-of-frames floor that a learned representation should beat.
# small, SEED=20261124, test accuracy: kws 0.35, instrument 0.35, pitch 0.89
# (chance 0.083 / 0.091 / 0.083).
#
# The audio comes under mixed licences (CC-BY-SA, GPL, Creative Commons; mbrola is
# non-free). It is fine for internal experiments, but do not commit the generated audio:
# regenerate it with this script. Outputs depend on the Debian bookworm package versions
# (engines, soundfonts, gettext catalogs).
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [tiny|small|medium|large]" >&2; exit 2; }
[ $# -ge 1 ] || usage
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
SIZE=${2:-${SIZE:-small}}
case "$SIZE" in tiny|small|medium|large) ;; *) usage ;; esac
SEED=${SEED:-20261124}
JOBS=${JOBS:-2}
WITH_MBROLA=${WITH_MBROLA:-0}
WITH_SAM=${WITH_SAM:-1}
PROBE=${PROBE:-1}
CACHE=${CACHE:-$OUT/_cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
T0=$(date +%s)
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
APT_UPDATED=0
apt_update_once() { if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi; }

# ---------------------------------------------------------------- 1. tools
# speech engines, sox, fluidsynth with two soundfonts, and the gettext catalogs
# (libc-l10n, gnupg-l10n) whose translated strings the multilingual TTS reads
TOOLS=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
       sox libsox-fmt-all fluidsynth fluid-soundfont-gm timgm6mb-soundfont
       libc-l10n gnupg-l10n)
missing=()
for p in "${TOOLS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt_update_once
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ------------------------------------------------ 2. data packages (extract only)
# Extracted with dpkg-deb -x into $CACHE/root/<pkg>/ (no install, no dependencies).
DATA=(asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav
      asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav
      asterisk-prompt-fr-armelle asterisk-prompt-es-co asterisk-moh-opsound-wav
      fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl klettres-data hedgewars-data
      sonic-pi-samples hydrogen-drumkits grandorgue-demo bucklespring-data sound-icons
      gnome-audio musescore-general-soundfont-small csound-soundfont)
mkdir -p "$CACHE/debs" "$CACHE/root"
chmod 777 "$CACHE/debs" 2>/dev/null || true
need=()
for p in "${DATA[@]}"; do [ -f "$CACHE/root/$p/.done" ] || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get download ${#need[@]} data packages"
  if ! (cd "$CACHE/debs" && apt-get download -qq "${need[@]}" >/dev/null 2>&1); then
    apt_update_once
    (cd "$CACHE/debs" && apt-get download -qq "${need[@]}" >/dev/null)
  fi
  for p in "${need[@]}"; do
    deb=$(ls -t "$CACHE/debs/${p}_"*.deb | head -1)
    rm -rf "$CACHE/root/$p"; mkdir -p "$CACHE/root/$p"
    dpkg-deb -x "$deb" "$CACHE/root/$p"
    # keep audio, soundfonts, drumkit/organ definitions; drop graphics, scripts, docs
    find "$CACHE/root/$p" -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.svg' -o -name '*.lua' \
      -o -name '*.mo' -o -name '*.html' -o -name '*.ttf' -o -name '*.gz' \) -delete
    touch "$CACHE/root/$p/.done"
    rm -f "$deb"
  done
fi

# ---------------------------------------------- 3. optional: mbrola (non-free)
if [ "$WITH_MBROLA" = 1 ]; then
  MB=(mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1)
  mb_missing=()
  for p in "${MB[@]}"; do installed "$p" || mb_missing+=("$p"); done
  if [ ${#mb_missing[@]} -gt 0 ]; then
    # Reuse the machine's own Debian mirror and suite; add contrib/non-free in a
    # private source list so the system configuration is left untouched.
    . /etc/os-release
    URI=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    [ -n "$URI" ] || URI=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    mkdir -p "$CACHE/apt/lists/partial"
    echo "deb $URI $VERSION_CODENAME contrib non-free" > "$CACHE/apt/nonfree.list"
    AO=(-o "Dir::Etc::sourcelist=$CACHE/apt/nonfree.list" -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=$CACHE/apt/lists" -o "APT::Get::List-Cleanup=0")
    log "mbrola: apt-get install ${mb_missing[*]} (contrib/non-free)"
    $SUDO apt-get "${AO[@]}" update -qq
    $SUDO apt-get "${AO[@]}" install -y -qq --no-install-recommends "${mb_missing[@]}" >/dev/null
  fi
fi

# ------------------------------------------------------- 4. optional: SAM (npm)
SAM_JS=""
if [ "$WITH_SAM" = 1 ] && command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  if [ ! -f "$CACHE/sam/package/dist/samjs.min.js" ]; then
    mkdir -p "$CACHE/sam"
    (cd "$CACHE/sam" && npm pack sam-js@0.3.1 --silent >/dev/null 2>&1 && tar xzf sam-js-0.3.1.tgz) \
      || log "sam-js not available; continuing without SAM voices"
  fi
  [ -f "$CACHE/sam/package/dist/samjs.min.js" ] && SAM_JS="$CACHE/sam/package/dist/samjs.min.js"
fi

# ------------------------------------------------------------------ 5. numpy
PY=python3
if ! $PY -c 'import numpy' >/dev/null 2>&1; then
  if [ ! -x "$CACHE/venv/bin/python" ]; then
    log "creating venv with numpy"
    python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" install -q numpy
  fi
  PY="$CACHE/venv/bin/python"
fi

T_SETUP=$(( $(date +%s) - T0 ))
log "setup done in ${T_SETUP}s; generating size=$SIZE seed=$SEED jobs=$JOBS"

# ----------------------------------------------------------- 6. the generator
cat > "$CACHE/make_tasks.py" <<'PYEOF'
import os, sys, re, csv, json, glob, math, time, wave, struct, shutil, hashlib, random
import gettext, subprocess, tempfile
import xml.etree.ElementTree as ET
from multiprocessing import Pool
import numpy as np

SR = 16000
E = os.environ
OUT = E['MT_OUT']; CACHE = E['MT_CACHE']; SIZE = E.get('MT_SIZE', 'small')
SEED = int(E.get('MT_SEED', '20261124')); JOBS = max(1, int(E.get('MT_JOBS', '2')))
WITH_MBROLA = E.get('MT_MBROLA') == '1'; SAM_JS = E.get('MT_SAM_JS', '')
ROOT = os.path.join(CACHE, 'root')
TTS_DIR = os.path.join(CACHE, 'tts'); DEC_DIR = os.path.join(CACHE, 'decoded')
SCALE = {'tiny': 0.1, 'small': 1, 'medium': 3, 'large': 10}[SIZE]
N = {k: int(round(v * SCALE)) for k, v in dict(
    pretrain=3000, kws_speakers=200, inst_per=200, pitch_per=100).items()}
SPLITS = ('train', 'valid', 'test')
TASKS = ('kws', 'instrument', 'pitch')

# ------------------------------------------------------------------ helpers
def H(*a):
    return int.from_bytes(hashlib.blake2b('\x1f'.join(map(str, a)).encode(),
                                          digest_size=8).digest(), 'big')

def R(*a):
    return random.Random(H(SEED, *a))

def NR(*a):
    return np.random.default_rng(H(SEED, *a))

def split3(*key, pv=0.1, pt=0.2):
    u = (H(SEED, 'split', *key) % 1000003) / 1000003.0
    return 'test' if u < pt else ('valid' if u < pt + pv else 'train')

def pkg(p, *rest):
    return os.path.join(ROOT, p, *rest)

def sox_decode(path, effects=()):
    p = subprocess.run(['sox', '-V1', '-R', path, '-t', 'raw', '-e', 'floating-point', '-b', '32',
                        '-c', '1', '-r', str(SR), '-', *effects], capture_output=True)
    if p.returncode != 0:
        raise RuntimeError('sox failed on %s: %s' % (path, p.stderr.decode()[-300:]))
    return np.frombuffer(p.stdout, np.float32).astype(np.float64)

def decoded(path):
    """Decode once to 16 kHz int16 .npy in the cache (for long sources)."""
    k = '%016x' % H('dec-i16', path)
    f = os.path.join(DEC_DIR, k + '.npy')
    if not os.path.exists(f):
        os.makedirs(DEC_DIR, exist_ok=True)
        x = np.clip(np.round(sox_decode(path) * 32767), -32768, 32767).astype('<i2')
        tmp = f + '.%d.tmp.npy' % os.getpid()
        np.save(tmp, x); os.replace(tmp, f)
    return Pcm(np.load(f, mmap_mode='r'))

class Pcm:
    """int16 memory-mapped samples that read as float64 in [-1, 1) when sliced."""
    def __init__(self, a):
        self.a = a
    def __len__(self):
        return len(self.a)
    def __getitem__(self, k):
        return np.asarray(self.a[k], np.float64) / 32768.0
    def __array__(self, dtype=None, copy=None):
        x = np.asarray(self.a, np.float64) / 32768.0
        return x if dtype is None else x.astype(dtype)

def write_wav(path, x):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pcm = (np.clip(x, -1, 1) * 32767).astype('<i2')
    with wave.open(path, 'wb') as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(SR)
        w.writeframes(pcm.tobytes())

def rms(x):
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0

def set_rms(x, db):
    r = rms(x) + 1e-12
    y = x * (10 ** (db / 20) / r)
    pk = np.abs(y).max() if len(y) else 0
    return y * (0.98 / pk) if pk > 0.98 else y

def resample(x, ratio):
    """Play back `ratio` times faster (ratio>1: shorter and higher), FFT band-limited."""
    x = np.asarray(x, np.float64)
    if abs(ratio - 1) < 1e-4 or len(x) < 8:
        return x
    n = len(x); pad = min(n, 2048)
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    Nn = len(xp); M = max(2, int(round(Nn / ratio)))
    X = np.fft.rfft(xp); K = M // 2 + 1
    Y = np.zeros(K, complex); k = min(K, len(X)); Y[:k] = X[:k]
    y = np.fft.irfft(Y, M) * (M / Nn)
    p2 = int(round(pad / ratio))
    return y[p2:p2 + max(1, int(round(n / ratio)))]

def trim(x, db=-40.0):
    fr = 160; n = len(x) // fr
    if n < 2:
        return x
    e = np.sqrt(np.mean(np.square(x[:n * fr].reshape(n, fr)), 1))
    idx = np.where(e > e.max() * 10 ** (db / 20))[0]
    if len(idx) == 0:
        return x
    return x[max(0, (idx[0] - 1) * fr):min(len(x), (idx[-1] + 2) * fr)]

def fade(x, ms=10):
    n = min(len(x) // 2, int(SR * ms / 1000))
    if n > 1:
        x = x.copy(); r = np.linspace(0, 1, n)
        x[:n] *= r; x[-n:] *= r[::-1]
    return x

def crop(x, dur, rng):
    L = int(dur * SR)
    if len(x) <= L:
        return np.asarray(x[:], np.float64)
    s = int(rng.integers(0, len(x) - L + 1))
    return np.asarray(x[s:s + L], np.float64)

def colored_noise(n, alpha, rng):
    X = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(X), dtype=float); f[0] = 1
    y = np.fft.irfft(X / f ** (alpha / 2), n)
    return y / (np.std(y) + 1e-12)

def random_eq(x, rng, max_db=6.0):
    """Random smooth channel colouration (microphone/room): spectral tilt of up to
    +-3 dB/octave plus three +-max_db bumps on a log-frequency axis."""
    if len(x) < 64:
        return x
    X = np.fft.rfft(x); f = np.fft.rfftfreq(len(x), 1.0 / SR)
    lf = np.log2(np.maximum(f, 50.0) / 1000.0)
    g = rng.uniform(-3, 3) * lf
    for _ in range(3):
        g += rng.uniform(-max_db, max_db) * np.exp(-0.5 * ((lf - rng.uniform(-3.3, 2.9)) / rng.uniform(0.3, 1.5)) ** 2)
    return np.fft.irfft(X * 10 ** (g / 20), len(x))

# ------------------------------------------------------------- text sources
MO_DOMAINS = ['libc', 'coreutils', 'tar', 'grep', 'sed', 'findutils', 'diffutils', 'dpkg',
              'apt', 'bash', 'make', 'wget', 'gnupg2']
_FMT = re.compile(r'%[-+ #0-9.*]*[a-zA-Z]|\{[^}]*\}|<[^>]*>|[_&@#$/\\|=*`~^\[\]]|\\n|\n|\t')

def _clean(s):
    s = _FMT.sub(' ', s)
    s = re.sub(r'\s+', ' ', s).strip(' .,:;-"\'')
    return s

def _ok(s, latin_only=False):
    if not (20 <= len(s) <= 100):
        return False
    letters = sum(c.isalpha() for c in s)
    if letters < 0.8 * len(s.replace(' ', '')) or len(s.split()) < 3:
        return False
    if any(c.isdigit() for c in s):
        return False
    if latin_only and not re.fullmatch(r"[A-Za-z ,.;:!?'()-]+", s):
        return False
    return True

_sent_cache = {}
def sentences(lang):
    """Human-translated UI sentences from gettext catalogs of base Debian packages
    (English: their msgids)."""
    if lang in _sent_cache:
        return _sent_cache[lang]
    out = set()
    for d in MO_DOMAINS:
        src_lang = 'de' if lang == 'en' else lang
        p = '/usr/share/locale/%s/LC_MESSAGES/%s.mo' % (src_lang, d)
        if not os.path.exists(p):
            continue
        try:
            cat = gettext.GNUTranslations(open(p, 'rb'))._catalog
        except Exception:
            continue
        for k, v in cat.items():
            if isinstance(k, tuple) or not k:
                continue
            if lang == 'en':
                s = _clean(k.split('\x04')[-1])
                if _ok(s, latin_only=True):
                    out.add(s)
            else:
                if not isinstance(v, str) or not v or v == k:
                    continue
                s = _clean(v)
                if _ok(s):
                    out.add(s)
    _sent_cache[lang] = sorted(out)
    return _sent_cache[lang]

# ------------------------------------------------------------- TTS engines
def espeak_data_dir():
    out = subprocess.run(['espeak-ng', '--version'], capture_output=True, text=True).stdout
    m = re.search(r'Data at:\s*(\S+)', out)
    return m.group(1) if m else '/usr/lib/x86_64-linux-gnu/espeak-ng-data'

ESPEAK_VARIANTS = ['default'] + sorted(v for v in os.listdir(os.path.join(espeak_data_dir(), 'voices', '!v'))
                                       if re.fullmatch(r'[A-Za-z0-9_-]+', v))

def espeak_variant_split(v):
    return split3('espeak-variant', v)

# fixed voice -> split assignments for engines with few voices
FLITE_SPLIT = {'kal': 'train', 'kal16': 'valid', 'awb': 'test', 'rms': 'train', 'slt': 'train'}
FEST_SPLIT = {'kal_diphone': 'train', 'cmu_us_slt_arctic_hts': 'valid', 'ked_diphone': 'test'}
MBROLA_SPLIT = {'mb-us1': 'train', 'mb-us3': 'train', 'mb-en1': 'valid', 'mb-us2': 'test'}

def tts_key(req):
    return '%016x' % H(json.dumps(req, sort_keys=True))

def tts_path(req):
    k = tts_key(req)
    return os.path.join(TTS_DIR, k[:2], k + '.wav')

def clean_text(t):
    return re.sub(r'\s+', ' ', t).strip().lstrip('-').strip()

def render_cli(req):
    """espeak-ng / flite / espeak-ng+mbrola, one process per utterance."""
    out = tts_path(req)
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + '.%d.tmp.wav' % os.getpid()
    p = req['p']; t = clean_text(req['text'])
    if req['eng'] in ('espeak', 'mbrola'):
        cmd = ['espeak-ng', '-v', req['voice'], '-s', str(p['speed']), '-p', str(p['pitch']), '-w', tmp, t]
    elif req['eng'] == 'flite':
        cmd = ['flite', '-voice', req['voice'], '--setf', 'duration_stretch=%.3f' % p['stretch'],
               '--setf', 'int_f0_target_mean=%d' % p['f0'], '-t', t, '-o', tmp]
    else:
        raise ValueError(req['eng'])
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0 or not os.path.exists(tmp):
        return None
    os.replace(tmp, out)
    return out

def render_festival(reqs):
    """Batch all festival utterances of one voice in a single festival process."""
    todo = [r for r in reqs if not os.path.exists(tts_path(r))]
    if not todo:
        return
    voice = todo[0]['voice']
    lines = ['(voice_%s)' % voice]
    for r in todo:
        out = tts_path(r); os.makedirs(os.path.dirname(out), exist_ok=True)
        t = clean_text(r['text']).replace('\\', ' ').replace('"', ' ')
        lines.append("(Parameter.set 'Duration_Stretch %.3f)" % r['p']['stretch'])
        lines.append('(utt.save.wave (utt.synth (Utterance Text "%s")) "%s" \'riff)' % (t, out + '.ftmp.wav'))
    fd, scm = tempfile.mkstemp(suffix='.scm', dir=CACHE); os.close(fd)
    with open(scm, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    subprocess.run(['festival', '-b', scm], capture_output=True)
    os.remove(scm)
    for r in todo:
        out = tts_path(r)
        if os.path.exists(out + '.ftmp.wav'):
            os.replace(out + '.ftmp.wav', out)

def render_sam(reqs):
    """Batch all SAM utterances in one node process (8-bit 22050 Hz output)."""
    todo = [r for r in reqs if not os.path.exists(tts_path(r))]
    if not todo or not SAM_JS:
        return
    jobs = []
    for r in todo:
        out = tts_path(r); os.makedirs(os.path.dirname(out), exist_ok=True)
        jobs.append(dict(text=clean_text(r['text']), out=out + '.u8', **r['p']))
    fd, jf = tempfile.mkstemp(suffix='.json', dir=CACHE); os.close(fd)
    with open(jf, 'w') as f:
        json.dump(jobs, f)
    js = ("const S=require(process.argv[1]);const fs=require('fs');"
          "for(const j of JSON.parse(fs.readFileSync(process.argv[2]))){"
          "try{const s=new S({speed:j.speed,pitch:j.pitch,throat:j.throat,mouth:j.mouth});"
          "const b=s.buf8(j.text);if(b&&b.length)fs.writeFileSync(j.out,Buffer.from(b));}catch(e){}}")
    subprocess.run(['node', '-e', js, SAM_JS, jf], capture_output=True)
    os.remove(jf)
    for r in todo:
        out = tts_path(r)
        if os.path.exists(out + '.u8'):
            data = open(out + '.u8', 'rb').read()
            with wave.open(out + '.stmp.wav', 'wb') as w:
                w.setnchannels(1); w.setsampwidth(1); w.setframerate(22050); w.writeframes(data)
            os.replace(out + '.stmp.wav', out); os.remove(out + '.u8')

def render_all(reqs, pool):
    uniq = {}
    for r in reqs:
        uniq[tts_key(r)] = r
    reqs = list(uniq.values())
    cli = [r for r in reqs if r['eng'] in ('espeak', 'flite', 'mbrola')]
    fest = {}
    for r in reqs:
        if r['eng'] == 'festival':
            fest.setdefault(r['voice'], []).append(r)
    sam = [r for r in reqs if r['eng'] == 'sam']
    asyncs = [pool.apply_async(render_festival, (v,)) for v in fest.values()]
    if sam:
        asyncs.append(pool.apply_async(render_sam, (sam,)))
    list(pool.imap_unordered(render_cli, cli, chunksize=16))
    for a in asyncs:
        a.get()

def load_tts(req):
    p = tts_path(req)
    if not os.path.exists(p):
        return None
    x = trim(sox_decode(p))
    return x if len(x) > SR * 0.08 else None

def voice_params(eng, rng):
    if eng in ('espeak', 'mbrola'):
        return dict(speed=int(rng.integers(120, 211)), pitch=int(rng.integers(15, 86)))
    if eng == 'flite':
        return dict(stretch=round(float(rng.uniform(0.85, 1.25)), 2), f0=int(rng.integers(85, 231)))
    if eng == 'festival':
        return dict(stretch=round(float(rng.uniform(0.85, 1.25)), 2))
    if eng == 'sam':
        return dict(speed=int(rng.integers(55, 95)), pitch=int(rng.integers(40, 100)),
                    throat=int(rng.integers(100, 200)), mouth=int(rng.integers(100, 200)))
    raise ValueError(eng)

EN_BASES = ['en-us', 'en', 'en-gb-scotland', 'en-gb-x-rp', 'en-gb-x-gbclan', 'en-gb-x-gbcwmd',
            'en-029', 'en-us-nyc']
ACCENT_BASES = ['de', 'fr-fr', 'es', 'it', 'nl', 'pl', 'sv', 'pt-br', 'hi', 'ru']

def english_voice(i, tag):
    """A pseudo-speaker reading English: engine, voice, params, vtl factor, split."""
    rng = NR(tag, 'voice', i)
    engines = [('espeak', 0.62), ('flite', 0.12), ('festival', 0.08)]
    if SAM_JS:
        engines.append(('sam', 0.08))
    if WITH_MBROLA:
        engines.append(('mbrola', 0.10))
    names = [e for e, _ in engines]; w = np.array([p for _, p in engines]); w /= w.sum()
    eng = names[int(rng.choice(len(names), p=w))]
    params = voice_params(eng, rng)
    vtl = round(float(rng.uniform(0.9, 1.1)), 3)
    if eng == 'espeak':
        base = EN_BASES[int(rng.integers(len(EN_BASES)))] if rng.random() < 0.8 else \
            ACCENT_BASES[int(rng.integers(len(ACCENT_BASES)))]
        var = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
        voice = base if var == 'default' else base + '+' + var
        split = espeak_variant_split(var); group = 'espeak:%s:%s' % (base, var)
    elif eng == 'flite':
        voice = sorted(FLITE_SPLIT)[int(rng.integers(len(FLITE_SPLIT)))]; split = FLITE_SPLIT[voice]; group = 'flite:' + voice
    elif eng == 'festival':
        voice = sorted(FEST_SPLIT)[int(rng.integers(len(FEST_SPLIT)))]; split = FEST_SPLIT[voice]; group = 'festival:' + voice
    elif eng == 'mbrola':
        voice = sorted(MBROLA_SPLIT)[int(rng.integers(len(MBROLA_SPLIT)))]; split = MBROLA_SPLIT[voice]; group = 'mbrola:' + voice
    else:
        voice = 'sam'; split = split3('sam-speaker', json.dumps(params, sort_keys=True))
        group = 'sam:s%(speed)dp%(pitch)dt%(throat)dm%(mouth)d' % params
    spk = '%s#%d' % (group, i)
    return dict(eng=eng, voice=voice, p=params, vtl=vtl, split=split, group=group, spk=spk)

# ---------------------------------------------------------- backgrounds (kws)
def bg_sources():
    src = []
    src += sorted(glob.glob(pkg('asterisk-moh-opsound-wav', 'usr/share/asterisk/moh/*.wav')))
    src += sorted(glob.glob(pkg('fillets-ng-data', 'usr/share/games/fillets-ng/music/*.ogg')))
    sp = pkg('sonic-pi-samples', 'usr/share/sonic-pi/samples')
    src += sorted(f for f in glob.glob(sp + '/*.flac')
                  if re.search(r'/(ambi_|vinyl_hiss|loop_)', f))
    return src

_bg_cache = {}
def background(rng, n):
    """n samples of background: real recordings (music on hold, game music, ambience,
    Sonic Pi loops, keyboard typing) or coloured noise."""
    kind = rng.random()
    if kind < 0.25:
        return colored_noise(n, float(rng.choice([0.0, 1.0, 2.0])), rng)
    if kind < 0.35:
        y = typing(rng, (n + 1) / SR)[:n]
        return np.pad(y, (0, n - len(y)))
    if 'list' not in _bg_cache:
        _bg_cache['list'] = bg_sources()
    lst = _bg_cache['list']
    f = lst[int(rng.integers(len(lst)))]
    x = decoded(f)
    if len(x) < n:
        x = np.tile(x[:], int(math.ceil(n / max(1, len(x)))) + 1)
    s = int(rng.integers(0, len(x) - n + 1))
    y = np.asarray(x[s:s + n], np.float64)
    return y / (rms(y) + 1e-9)

_buckle = {}
def typing(rng, dur):
    """Keyboard typing from bucklespring's recorded IBM Model M key sounds."""
    if 'k' not in _buckle:
        _buckle['k'] = sorted(glob.glob(pkg('bucklespring-data', 'usr/share/buckle/wav/*-0.wav')))
    fs = _buckle['k']
    n = int(dur * SR); y = np.zeros(n + SR)
    t = float(rng.uniform(0, 0.15))
    while t < dur:
        press = fs[int(rng.integers(len(fs)))]
        release = press[:-len('-0.wav')] + '-1.wav'
        for g, f, dt in ((1.0, press, 0.0), (0.6, release, float(rng.uniform(0.05, 0.12)))):
            if os.path.exists(f):
                s = decoded(f)[:]; i = int((t + dt) * SR)
                L = min(len(s), len(y) - i)
                if L > 0:
                    y[i:i + L] += g * s[:L]
        t += 0.04 + float(rng.exponential(0.12))
    y = y[:n]
    return y / (rms(y) + 1e-9)

# =================================================================== KWS
KW = ['yes', 'no', 'up', 'down', 'left', 'right', 'on', 'off', 'stop', 'go']
UNK = ['bed', 'bird', 'cat', 'dog', 'eight', 'five', 'four', 'happy', 'house', 'marvin', 'nine',
       'one', 'seven', 'sheila', 'six', 'three', 'tree', 'two', 'wow', 'zero', 'backward',
       'forward', 'follow', 'learn', 'visual']

def plan_kws():
    jobs, reqs = [], []
    for i in range(N['kws_speakers']):
        v = english_voice(i, 'kws')
        rng = R('kws', 'unk', i)
        words = [(w, w) for w in KW] + [(rng.choice(UNK), '_unknown_')]
        for w, label in words:
            req = dict(eng=v['eng'], voice=v['voice'], p=v['p'], text=w)
            reqs.append(req)
            jobs.append(dict(task='kws', name='%s_%05d_%s' % (v['split'], i, w), label=label,
                             split=v['split'], req=req, vtl=v['vtl'], group=v['group'],
                             source=v['spk']))
        jobs.append(dict(task='kws', name='%s_%05d_silence' % (v['split'], i), label='_silence_',
                         split=v['split'], req=None, vtl=1, group='silence:' + v['split'], source='background'))
    return jobs, reqs

def make_kws(job):
    rng = NR('kws-clip', job['name'])
    n = SR
    if job['req'] is None:
        x = background(rng, n) * 10 ** (rng.uniform(-20, 0) / 20)
    else:
        s = load_tts(job['req'])
        if s is None:
            return None
        s = resample(s, job['vtl'] * rng.uniform(0.95, 1.05))
        if len(s) > 0.96 * n:
            s = resample(s, len(s) / (0.96 * n))
        if rng.random() < 0.5:
            s = random_eq(s, rng)
        s = fade(s, 5) / (rms(s) + 1e-9)
        x = np.zeros(n)
        off = int(rng.integers(0, n - len(s) + 1))
        x[off:off + len(s)] += s
        if rng.random() < 0.8:
            snr = rng.uniform(3, 25)  # relative to the speech-active part
            x += background(rng, n) * 10 ** (-snr / 20)
    x = set_rms(x, rng.uniform(-32, -18))
    rel = 'wav/%s.wav' % job['name']
    write_wav(os.path.join(OUT, 'kws', rel), x)
    return dict(path=rel, label=job['label'], split=job['split'], group=job['group'], source=job['source'])

# ============================================================ fluidsynth
SF = {
    'FluidR3_GM': '/usr/share/sounds/sf2/FluidR3_GM.sf2',
    'MuseScore_General_Lite': pkg('musescore-general-soundfont-small', 'usr/share/sounds/sf3/MuseScore_General_Lite.sf3'),
    'sf_GMbank': pkg('csound-soundfont', 'usr/share/sounds/sf2/sf_GMbank.sf2'),
    'TimGM6mb': '/usr/share/sounds/sf2/TimGM6mb.sf2',
}
FS_RATE = 32000

def _vlq(n):
    b = [n & 0x7f]; n >>= 7
    while n:
        b.append((n & 0x7f) | 0x80); n >>= 7
    return bytes(reversed(b))

def write_midi(path, items, tail=1.2):
    """items: dict(setup=[(ch,bank,prog)], notes=[(t,dur,ch,note,vel)], len=seconds).
    Items are laid out one after another; returns start times (s)."""
    tps = 960  # ticks per second at 120 bpm, 480 ppq
    ev = []; t0 = 0.5; starts = []
    for it in items:
        starts.append(t0)
        for ch, bank, prog in it['setup']:
            if ch != 9:
                ev.append((t0, 0, bytes([0xB0 | ch, 0, bank])))
                ev.append((t0, 1, bytes([0xB0 | ch, 32, 0])))
            ev.append((t0, 2, bytes([0xC0 | ch, prog])))
        for t, dur, ch, note, vel in it['notes']:
            ev.append((t0 + t + 0.01, 4, bytes([0x90 | ch, note, vel])))
            ev.append((t0 + t + 0.01 + dur, 3, bytes([0x80 | ch, note, 0])))
        end = t0 + it['len'] + tail
        for ch in sorted({c for c, _, _ in it['setup']}):
            ev.append((end - 0.03, 5, bytes([0xB0 | ch, 120, 0])))
            ev.append((end - 0.03, 6, bytes([0xB0 | ch, 121, 0])))
        t0 = end
    ev.sort(key=lambda e: (int(round(e[0] * tps)), e[1]))
    trk = _vlq(0) + b'\xff\x51\x03' + (500000).to_bytes(3, 'big'); last = 0
    for t, _, d in ev:
        tk = int(round(t * tps)); trk += _vlq(tk - last) + d; last = tk
    trk += _vlq(0) + b'\xff\x2f\x00'
    with open(path, 'wb') as f:
        f.write(b'MThd' + struct.pack('>IHHH', 6, 0, 1, 480) + b'MTrk' + struct.pack('>I', len(trk)) + trk)
    return starts

def fs_job(args):
    """Render a chunk of items with one soundfont, cut, post-process and write them."""
    sfname, items = args
    fd, mid = tempfile.mkstemp(suffix='.mid', dir=CACHE); os.close(fd)
    raw = mid[:-4] + '.raw'
    starts = write_midi(mid, items)
    subprocess.run(['fluidsynth', '-ni', '-q', '-F', raw, '-T', 'raw', '-O', 'float', '-r', str(FS_RATE),
                    '-g', '0.6', '-R', '0', '-C', '0', SF[sfname], mid], capture_output=True, check=True)
    y = np.fromfile(raw, np.float32).reshape(-1, 2).mean(1).astype(np.float64)
    os.remove(mid); os.remove(raw)
    rows = []
    for it, t0 in zip(items, starts):
        a = int((t0 + 0.01) * FS_RATE); b = a + int(it['len'] * FS_RATE)
        seg = y[a:b]
        if len(seg) < 0.5 * (b - a) or rms(seg) < 1e-4:
            continue
        x = resample(seg, FS_RATE / SR)
        rng = NR('fs-post', it['out'])
        x = fade(x, 10)
        x = set_rms(x, rng.uniform(-30, -16))
        write_wav(os.path.join(OUT, it['out']), x)
        rows.append(dict(it['row'], seconds=round(len(x) / SR, 3)))
    return rows

def chunks(items, n=100):
    by = {}
    for it in items:
        by.setdefault(it['sf'], []).append(it)
    out = []
    for sf in sorted(by):
        lst = by[sf]
        for i in range(0, len(lst), n):
            out.append((sf, lst[i:i + n]))
    return out

# ============================================================ INSTRUMENT
FAMILIES = {
    'keyboard': [0, 1, 2, 3, 4, 5, 6, 7],
    'mallet': [8, 9, 10, 11, 12, 13, 14, 15],
    'organ': [16, 17, 18, 19, 20],
    'reed': [21, 22, 23, 64, 65, 66, 67, 68, 69, 70, 71],
    'guitar': [24, 25, 26, 27, 28, 29, 30, 31],
    'bass': [32, 33, 34, 35, 36, 37, 38, 39],
    'string': [40, 41, 42, 43, 44, 45, 46, 48, 49, 50, 51],
    'vocal': [52, 53, 54],
    'brass': [56, 57, 58, 59, 60, 61, 62, 63],
    'flute': [72, 73, 74, 75, 76, 77, 78, 79],
    'synth_lead': [80, 81, 82, 83, 84, 85, 86, 87],
}
RANGES = {'bass': (28, 55), 'brass': (45, 77), 'flute': (60, 96), 'guitar': (40, 76), 'keyboard': (36, 96),
          'mallet': (60, 96), 'organ': (36, 84), 'reed': (45, 81), 'string': (43, 84),
          'synth_lead': (48, 84), 'vocal': (48, 79)}
INST_SF_SPLIT = {'FluidR3_GM': 'train', 'MuseScore_General_Lite': 'train', 'sf_GMbank': 'valid',
                 'TimGM6mb': 'test'}

def plan_instrument():
    items = []
    frac = {'train': 0.7, 'valid': 0.1, 'test': 0.2}
    for fam in sorted(FAMILIES):
        for sp in SPLITS:
            sfs = sorted(s for s, v in INST_SF_SPLIT.items() if v == sp)
            n = int(round(N['inst_per'] * frac[sp] * 1.08))
            for i in range(n):
                rng = NR('inst', fam, sp, i)
                sf = sfs[i % len(sfs)]
                prog = FAMILIES[fam][i % len(FAMILIES[fam])] if rng.random() < 0.7 else \
                    FAMILIES[fam][int(rng.integers(len(FAMILIES[fam])))]
                lo, hi = RANGES[fam]
                note = int(rng.integers(lo, hi + 1)); vel = int(rng.integers(40, 128))
                name = '%s_%s_%s_p%03d_n%03d_%04d' % (sp, fam, sf, prog, note, i)
                out = 'instrument/wav/%s.wav' % name
                items.append(dict(sf=sf, setup=[(0, 0, prog)], notes=[(0, 1.0, 0, note, vel)], len=1.5, out=out,
                                  row=dict(path='wav/%s.wav' % name, label=fam, split=sp,
                                           group='%s:%d' % (sf, prog), source='note%d_vel%d' % (note, vel))))
    return items

# ================================================================= PITCH
NOTE_NAMES = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B']
PITCHED = sorted(p for f in ('keyboard', 'mallet', 'organ', 'reed', 'guitar', 'string', 'vocal', 'brass',
                             'flute', 'synth_lead') for p in FAMILIES[f])

def plan_pitch():
    order = sorted(PITCHED, key=lambda p: H(SEED, 'pitch-program', p))
    nt, nv = int(round(0.2 * len(order))), int(round(0.1 * len(order)))
    progs = {'test': order[:nt], 'valid': order[nt:nt + nv], 'train': order[nt + nv:]}
    sfs = ['FluidR3_GM', 'MuseScore_General_Lite', 'sf_GMbank', 'TimGM6mb']
    items = []
    for pc in range(12):
        for i in range(int(N['pitch_per'] * 1.25)):
            rng = NR('pitch', pc, i)
            sp = SPLITS[int(rng.choice(3, p=[0.7, 0.1, 0.2]))]
            prog = progs[sp][int(rng.integers(len(progs[sp])))]
            note = 48 + 12 * int(rng.integers(0, 3)) + pc
            sf = sfs[int(rng.integers(len(sfs)))]; vel = int(rng.integers(50, 121))
            name = '%s_%s_%s_p%03d_n%03d_%04d' % (sp, NOTE_NAMES[pc].replace('#', 's'), sf, prog, note, i)
            out = 'pitch/wav/%s.wav' % name
            items.append(dict(sf=sf, setup=[(0, 0, prog)], notes=[(0, 0.8, 0, note, vel)], len=1.0, out=out,
                              row=dict(path='wav/%s.wav' % name, label=NOTE_NAMES[pc], split=sp,
                                       group='prog%d' % prog, source='%s:note%d' % (sf, note))))
    return items

# ============================================================== PRETRAIN
MOOD = {'major': [0, 2, 4, 5, 7, 9, 11], 'minor': [0, 2, 3, 5, 7, 8, 10], 'penta': [0, 2, 4, 7, 9],
        'dorian': [0, 2, 3, 5, 7, 9, 10]}
GM_DRUM_PROGS = [0, 8, 16, 24, 25, 32, 40, 48]  # GM percussion-channel kit programs

def music_item(i, sf, L):
    """A random short phrase: melody + optional bass, chords, drums (GM programs)."""
    rng = NR('pt-music', i)
    tempo = float(rng.uniform(70, 170)); beat = 60.0 / tempo
    scale = MOOD[list(MOOD)[int(rng.integers(len(MOOD)))]]; root = int(rng.integers(0, 12))
    setup, notes = [], []
    mel_prog = int(rng.integers(0, 96))
    setup.append((0, 0, mel_prog))
    t = 0.0; deg = int(rng.integers(0, len(scale))); octv = int(rng.integers(4, 7))
    while t < L - 0.05:
        d = beat * float(rng.choice([0.25, 0.5, 0.5, 1, 1, 1.5, 2]))
        deg += int(rng.integers(-2, 3))
        o = octv + deg // len(scale)
        note = min(100, max(30, 12 * o + root + scale[deg % len(scale)]))
        if rng.random() > 0.1:
            notes.append((t, min(d, L - t) * 0.95, 0, note, int(rng.integers(60, 120))))
        t += d
    if rng.random() < 0.5:
        setup.append((1, 0, int(rng.integers(32, 40))))
        t = 0.0
        while t < L - 0.05:
            d = beat * float(rng.choice([1, 2])); note = 36 + root + scale[int(rng.integers(0, len(scale)))] % 12
            notes.append((t, min(d, L - t) * 0.9, 1, note, int(rng.integers(70, 115)))); t += d
    if rng.random() < 0.5:
        prog = int(rng.choice([0, 4, 16, 19, 24, 48, 49, 50, 52, 88, 89, 91]))
        setup.append((2, 0, prog)); t = 0.0
        while t < L - 0.05:
            d = beat * 2; r = scale[int(rng.integers(0, len(scale)))]
            for k in (0, 2, 4):
                deg2 = scale.index(r) + k
                n = 60 + root + scale[deg2 % len(scale)] + 12 * (deg2 // len(scale)) - 12
                notes.append((t, min(d, L - t) * 0.95, 2, n, int(rng.integers(45, 90))))
            t += d
    if rng.random() < 0.4:
        setup.append((9, 0, int(rng.choice(GM_DRUM_PROGS)))); t = 0.0; step = beat / 2; k = 0
        while t < L - 0.05:
            if k % 4 == 0:
                notes.append((t, 0.1, 9, 36, 110))
            if k % 4 == 2:
                notes.append((t, 0.1, 9, 38, 100))
            notes.append((t, 0.1, 9, 42, int(rng.integers(50, 90))))
            t += step; k += 1
    return dict(sf=sf, setup=setup, notes=notes, len=L)

# real read speech: one Asterisk prompt voice per package
PROMPT_PKGS = ['asterisk-core-sounds-en-wav', 'asterisk-core-sounds-es-wav', 'asterisk-core-sounds-fr-wav',
               'asterisk-core-sounds-it-wav', 'asterisk-core-sounds-ru-wav', 'asterisk-prompt-it-menardi-wav',
               'asterisk-prompt-fr-armelle', 'asterisk-prompt-es-co']
NOT_SPEECH = re.compile(r'(^|/)(silence|beep|beeperr|[^/]*tone[^/]*|dtmf[^/]*|ring[^/]*)(\.|/|$)')

def prompt_speech():
    """(file, voice) pairs of real speech: the Asterisk prompts (beeps, tones and
    silences left out) and the Fish Fillets voice acting (a voice = language + role)."""
    out = []
    for p in PROMPT_PKGS:
        base = pkg(p, 'usr/share/asterisk/sounds')
        voice = 'asterisk:' + re.sub(r'^asterisk-(core-sounds|prompt)-|-wav$', '', p)
        for dp, dns, fns in os.walk(base):
            dns.sort()
            for fn in sorted(fns):
                f = os.path.join(dp, fn)
                if fn.endswith(('.wav', '.gsm')) and not os.path.islink(f) \
                        and not NOT_SPEECH.search(os.path.relpath(f, base)):
                    out.append((f, voice))
    for lang in ('cs', 'nl'):
        base = pkg('fillets-ng-data-' + lang, 'usr/share/games/fillets-ng/sound')
        for f in sorted(glob.glob(base + '/*/%s/*.ogg' % lang)):
            parts = os.path.basename(f)[:-4].split('-')
            if len(parts) >= 3:
                out.append((f, 'fillets:%s:%s' % (lang, parts[1])))
    return out

DRUM_PARTS = [('open_hat', r'(open|op\b|opened|semi)'), ('hat', r'(closed|\bcl\b|pedal|\bpd\b)'),
              ('kick', r'(kick|bass ?drum|bassdrum)'), ('snare', r'snare(?!.*roll)'),
              ('tom', r'\btom'), ('crash', r'crash(?!.*(ride|bell|flink))')]

def drum_kits():
    """Hydrogen drum kits: for each kit, the samples of the parts a simple beat uses
    (kick, snare, hat, open_hat, tom, crash), read from its drumkit.xml."""
    base = pkg('hydrogen-drumkits', 'usr/share/hydrogen/data/drumkits')
    kits = {}
    for xmlf in sorted(glob.glob(base + '/*/drumkit.xml')):
        kit = os.path.basename(os.path.dirname(xmlf))
        root = ET.parse(xmlf).getroot()
        ns = re.match(r'\{.*\}', root.tag); ns = ns.group(0) if ns else ''
        parts = {}
        for inst in root.iter(ns + 'instrument'):
            nm = (inst.findtext(ns + 'name') or '').lower()
            files = [os.path.join(os.path.dirname(xmlf), f.text) for f in inst.iter(ns + 'filename') if f.text]
            files = [f for f in files if os.path.exists(f)]
            if not files:
                continue
            is_hat = re.search(r'(hh|hi-?hat|hat)', nm)
            if ('crash' in nm and 'ride' in nm) or re.search(r'(bell|china|splash|roll|choke|swish)', nm):
                continue  # ambiguous or unusual strokes
            for c, rx in DRUM_PARTS:
                if c.endswith('hat') != bool(is_hat):
                    continue
                if re.search(rx, nm):
                    bad = {'hat': 'open', 'open_hat': 'closed'}.get(c)
                    ok = [f for f in files if not (bad and bad in os.path.basename(f).lower())]
                    if ok:
                        parts.setdefault(c, []).extend(ok)
                    break
        if {'kick', 'snare', 'hat'} <= set(parts):
            kits[kit] = {c: sorted(set(v)) for c, v in sorted(parts.items())}
    return kits

def pretrain_sources():
    """Pools of real recordings for the unlabeled corpus."""
    S = {}
    S['speech_real_prompts'] = prompt_speech()
    S['speech_real_letters'] = [(f, 'klettres:' + f.split('/klettres/')[1].split('/')[0]) for f in
                                sorted(glob.glob(pkg('klettres-data', 'usr/share/klettres/*/*/*.ogg')))]
    S['speech_real_game'] = [(f, 'hedgewars:' + os.path.basename(os.path.dirname(f))) for f in
                             sorted(glob.glob(pkg('hedgewars-data', 'usr/share/games/hedgewars/Data/Sounds/voices/*/*.ogg')))]
    S['music_tracks'] = sorted(glob.glob(pkg('hedgewars-data', 'usr/share/games/hedgewars/Data/Music/*.ogg')) +
                               glob.glob(pkg('fillets-ng-data', 'usr/share/games/fillets-ng/music/*.ogg')) +
                               glob.glob(pkg('asterisk-moh-opsound-wav', 'usr/share/asterisk/moh/*.wav')))
    sp = pkg('sonic-pi-samples', 'usr/share/sonic-pi/samples')
    S['music_loops'] = sorted(glob.glob(sp + '/loop_*.flac'))
    S['other_sfx'] = sorted(
        [f for f in glob.glob(sp + '/*.flac') if not os.path.basename(f).startswith('loop_')] +
        glob.glob(pkg('hedgewars-data', 'usr/share/games/hedgewars/Data/Sounds/*.ogg')) +
        [f for f in glob.glob(pkg('fillets-ng-data', 'usr/share/games/fillets-ng/sound/*/*/*.ogg'))] +
        glob.glob(pkg('sound-icons', 'usr/share/sounds/sound-icons/*.wav')) +
        glob.glob(pkg('gnome-audio', 'usr/share/sounds/*.wav')))
    return S

def organ_samples():
    import zipfile
    zs = sorted(glob.glob(pkg('grandorgue-demo', 'usr/share/GrandOrgue/packages/*.orgue')))
    out = []
    if zs:
        d = os.path.join(CACHE, 'grandorgue')
        if not os.path.isdir(d):
            with zipfile.ZipFile(zs[0]) as z:
                z.extractall(d)
        out = sorted(glob.glob(d + '/*/*.wav'))
    return out

def plan_pretrain():
    n = N['pretrain']
    quota = {'speech_real': 0.25, 'speech_tts': 0.20, 'music_midi': 0.17, 'music_tracks': 0.10,
             'music_loops': 0.03, 'music_drums': 0.04, 'music_organ': 0.02, 'other': 0.19}
    counts = {k: int(round(v * n)) for k, v in quota.items()}
    S = pretrain_sources()
    jobs, reqs, fs_items = [], [], []
    idx = 0
    def new(cat, **kw):
        nonlocal idx
        rng = NR('pt', idx)
        L = round(float(rng.uniform(1.0, 4.0)), 2)
        jobs.append(dict(task='pretrain', name='%s_%06d' % (cat, idx), cat=cat, len=L, **kw)); idx += 1
    # real speech: prompts 60 %, letters 20 %, game voices 20 %; a clip chains lines of one voice
    for i in range(counts['speech_real']):
        rng = NR('pt-sr', i); u = rng.random()
        pool = S['speech_real_prompts'] if u < 0.6 else (S['speech_real_letters'] if u < 0.8 else S['speech_real_game'])
        grp = pool[int(rng.integers(len(pool)))][1]
        same = [f for f, g in pool if g == grp]
        new('speech_real', kind='chain', files=[same[int(rng.integers(len(same)))] for _ in range(6)], source=grp)
    langs = sorted(set(['de', 'es', 'fr', 'it', 'ru', 'nl', 'pt', 'pl', 'cs', 'sv', 'fi', 'tr', 'hu', 'da', 'nb',
                        'uk', 'ro', 'sk', 'ca', 'el', 'bg', 'hr', 'sr', 'vi', 'id', 'ja', 'ko', 'eu', 'et', 'lt',
                        'sl', 'eo', 'af', 'ka', 'he', 'ar', 'fa', 'ms', 'ga']))
    ev = {'pt': 'pt', 'nb': 'nb', 'fr': 'fr-fr'}
    tts_langs = [l for l in langs if len(sentences(l)) >= 100]
    en_pool = sentences('en')
    for i in range(counts['speech_tts']):
        rng = NR('pt-tts', i)
        if rng.random() < 0.35:
            j = i
            while True:  # only voices of the kws training split go into the unlabeled corpus
                v = english_voice(j, 'pretrain')
                if v['split'] == 'train':
                    break
                j += 100003
            text = ' '.join(en_pool[int(rng.integers(len(en_pool)))] for _ in range(2))
            req = dict(eng=v['eng'], voice=v['voice'], p=v['p'], text=text); grp = v['group']
        else:
            lang = tts_langs[int(rng.integers(len(tts_langs)))]
            pool = sentences(lang)
            var = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
            while espeak_variant_split(var) != 'train':
                var = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
            base = ev.get(lang, lang)
            text = ' '.join(pool[int(rng.integers(len(pool)))] for _ in range(2))
            req = dict(eng='espeak', voice=base if var == 'default' else base + '+' + var,
                       p=voice_params('espeak', rng), text=text)
            grp = 'espeak:%s:%s' % (base, var)
        reqs.append(req)
        new('speech_tts', kind='tts', req=req, source=grp)
    for i in range(counts['music_midi']):
        rng = NR('pt-midi', i); L = round(float(rng.uniform(1.0, 4.0)), 2)
        sf = ['FluidR3_GM', 'MuseScore_General_Lite'][i % 2]  # the instrument task's training soundfonts
        it = music_item(i, sf, L)
        name = 'music_midi_%06d' % idx; idx += 1
        it['out'] = 'pretrain/%s.wav' % name
        it['row'] = dict(path='pretrain/%s.wav' % name, category='music_midi', source=sf)
        fs_items.append(it)
    for i in range(counts['music_tracks']):
        rng = NR('pt-tr', i); f = S['music_tracks'][int(rng.integers(len(S['music_tracks'])))]
        new('music_tracks', kind='crop', file=f, source=os.path.basename(f))
    for i in range(counts['music_loops']):
        rng = NR('pt-lp', i); f = S['music_loops'][int(rng.integers(len(S['music_loops'])))]
        new('music_loops', kind='crop', file=f, source=os.path.basename(f))
    kits = drum_kits(); names = sorted(kits)
    for i in range(counts['music_drums'] if names else 0):
        rng = NR('pt-dr', i); kit = names[int(rng.integers(len(names)))]
        new('music_drums', kind='drumpattern', kit=kits[kit], source='hydrogen:' + kit)
    organ = organ_samples()
    for i in range(counts['music_organ'] if organ else 0):
        rng = NR('pt-org', i)
        new('music_organ', kind='chain', files=[organ[int(rng.integers(len(organ)))] for _ in range(4)],
            source='grandorgue-demo', maxpiece=1.2)
    for i in range(counts['other']):
        rng = NR('pt-oth', i)
        if rng.random() < 0.15:
            new('other', kind='typing', source='bucklespring')
        else:
            pool = S['other_sfx']
            new('other', kind='chain', files=[pool[int(rng.integers(len(pool)))] for _ in range(4)], source='sfx')
    return jobs, reqs, fs_items

def make_pretrain(job):
    rng = NR('pt-clip', job['name']); L = job['len']; n = int(L * SR)
    k = job['kind']
    if k == 'tts':
        s = load_tts(job['req'])
        if s is None:
            return None
        x = crop(s, L, rng)
    elif k == 'crop':
        src = decoded(job['file'])
        x = crop(src, L, rng)
        if rms(x) < 1e-4:
            x = crop(src, L, rng)
    elif k == 'chain':
        parts, tot = [], 0
        for f in job['files']:
            s = trim(decoded(f)[:], -45)
            if job.get('maxpiece'):
                s = crop(s, job['maxpiece'], rng)
            s = fade(np.asarray(s, np.float64), 5)
            if len(s) < 0.05 * SR:
                continue
            parts += [s / (rms(s) + 1e-9) * 10 ** (rng.uniform(-6, 0) / 20), np.zeros(int(rng.uniform(0.05, 0.4) * SR))]
            tot += len(s) + len(parts[-1])
            if tot >= n:
                break
        if not parts:
            return None
        x = np.concatenate(parts)[:n]
    elif k == 'typing':
        x = typing(rng, L)
    elif k == 'drumpattern':
        kit = job['kit']; x = np.zeros(n + SR)
        tempo = rng.uniform(80, 160); step = 60 / tempo / 2; t = 0.0; i = 0
        def hit(c, t, g):
            if c in kit:
                s = np.asarray(decoded(kit[c][int(rng.integers(len(kit[c])))])[:SR], np.float64)
                a = int(t * SR); x[a:a + len(s)] += g * s
        while t < L:
            if i % 4 == 0: hit('kick', t, 1.0)
            if i % 4 == 2: hit('snare', t, 0.9)
            hit('hat' if rng.random() < 0.85 else 'open_hat', t, rng.uniform(0.3, 0.6))
            if i % 16 == 15 and rng.random() < 0.5: hit('tom', t, 0.8)
            if i % 16 == 0 and rng.random() < 0.3: hit('crash', t, 0.7)
            t += step; i += 1
        x = x[:n]
    else:
        raise ValueError(k)
    x = np.asarray(x, np.float64)
    if len(x) < 0.3 * SR or rms(x) < 1e-5:
        return None
    x = set_rms(fade(x, 10), rng.uniform(-30, -16))
    rel = 'pretrain/%s.wav' % job['name']
    write_wav(os.path.join(OUT, rel), x)
    return dict(path=rel, category=job['cat'], source=job.get('source', ''), seconds=round(len(x) / SR, 3))

README = """# Audio development tasks (size=%(size)s, seed=%(seed)s)
All audio: 16 kHz mono 16-bit PCM WAV. Every task dir has labels.csv (path,label,split;
paths relative to the task dir) and meta.csv (path,group,source). `group` is the held-out
factor: no group of the test split occurs in the train split (see manifest.json).

| task | classes | what | held-out factor in valid/test |
| --- | --- | --- | --- |
| kws | 10 words + _unknown_ + _silence_ | 1 s clips, TTS voices (espeak-ng variants and accents, flite, festival, SAM, optional mbrola) + real backgrounds | unseen voices (espeak variant, flite/festival/mbrola voice, SAM settings) |
| instrument | 11 NSynth families | 1.5 s single notes, GM programs via fluidsynth | unseen soundfonts (train FluidR3+MuseScore, valid sf_GMbank, test TimGM6mb) |
| pitch | 12 pitch classes | 1 s notes C3-B5 from pitched GM programs, 4 soundfonts | unseen GM programs |

pretrain/ + pretrain.csv: unlabeled 1-4 s clips (real speech, TTS speech, music, drum
patterns, sound effects). It holds no valid/test voice of kws and no valid/test soundfont
of instrument; its music may use any GM program.

probe.json: test accuracy of a bag-of-frames floor (mean+std of a 64-band log-mel,
logistic regression with L2 picked on valid).
"""

# ================================================================= driver
def run_jobs(pool, fn, jobs):
    return [r for r in pool.imap(fn, jobs, chunksize=8) if r]

def write_task(task, rows):
    d = os.path.join(OUT, task)
    rows = sorted(rows, key=lambda r: r['path'])
    with open(os.path.join(d, 'labels.csv'), 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['path', 'label', 'split'])
        for r in rows:
            w.writerow([r['path'], r['label'], r['split']])
    with open(os.path.join(d, 'meta.csv'), 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['path', 'group', 'source'])
        for r in rows:
            w.writerow([r['path'], r.get('group', ''), r.get('source', '')])
    cnt = {}
    for r in rows:
        cnt.setdefault(r['split'], {}).setdefault(r['label'], 0)
        cnt[r['split']][r['label']] += 1
    groups = {s: len({r.get('group') for r in rows if r['split'] == s}) for s in SPLITS}
    overlap = len({r.get('group') for r in rows if r['split'] == 'train'} &
                  {r.get('group') for r in rows if r['split'] == 'test'})
    return dict(n=len(rows), per_split={s: sum(cnt.get(s, {}).values()) for s in SPLITS},
                per_split_label=cnt, groups_per_split=groups, train_test_group_overlap=overlap)

def balance(task, rows, per):
    """Keep at most the target count per (label, split); delete the surplus files."""
    frac = {'train': 0.7, 'valid': 0.1, 'test': 0.2}; keep = []; seen = {}
    for r in sorted(rows, key=lambda r: r['path']):
        k = (r['label'], r['split']); seen[k] = seen.get(k, 0) + 1
        if seen[k] <= int(round(per * frac[r['split']])):
            keep.append(r)
        else:
            os.remove(os.path.join(OUT, task, r['path']))
    return keep

def du(path):
    tot = 0; nf = 0
    for dp, _, fs in os.walk(path):
        for f in fs:
            tot += os.path.getsize(os.path.join(dp, f)); nf += 1
    return tot, nf

def main_gen():
    t_all = time.time(); timings = {}; man = dict(size=SIZE, seed=SEED, jobs=JOBS, sample_rate=SR,
                                                  with_mbrola=WITH_MBROLA, with_sam=bool(SAM_JS), tasks={})
    for t in TASKS + ('pretrain',):
        shutil.rmtree(os.path.join(OUT, t), ignore_errors=True)
        os.makedirs(os.path.join(OUT, t, 'wav') if t != 'pretrain' else os.path.join(OUT, t), exist_ok=True)
    with Pool(JOBS) as pool:
        t = time.time()
        kws_jobs, kws_reqs = plan_kws()
        pt_jobs, pt_reqs, pt_fs = plan_pretrain()
        timings['plan'] = time.time() - t
        t = time.time()
        render_all(kws_reqs + pt_reqs, pool)
        timings['tts_render'] = time.time() - t
        t = time.time(); rows = run_jobs(pool, make_kws, kws_jobs)
        man['tasks']['kws'] = write_task('kws', rows); timings['kws'] = time.time() - t
        t = time.time(); rows = [r for rs in pool.imap(fs_job, chunks(plan_instrument())) for r in rs]
        keep = balance('instrument', rows, N['inst_per'])
        man['tasks']['instrument'] = write_task('instrument', keep); timings['instrument'] = time.time() - t
        t = time.time(); rows = [r for rs in pool.imap(fs_job, chunks(plan_pitch())) for r in rs]
        keep = balance('pitch', rows, N['pitch_per'])
        man['tasks']['pitch'] = write_task('pitch', keep); timings['pitch'] = time.time() - t
        t = time.time()
        rows = run_jobs(pool, make_pretrain, pt_jobs) + [r for rs in pool.imap(fs_job, chunks(pt_fs)) for r in rs]
        for r in rows:
            r.setdefault('category', 'music_midi')
        rows.sort(key=lambda r: r['path'])
        with open(os.path.join(OUT, 'pretrain.csv'), 'w', newline='') as f:
            w = csv.writer(f); w.writerow(['path', 'category', 'source', 'seconds'])
            for r in rows:
                w.writerow([r['path'], r['category'], r.get('source', ''), r['seconds']])
        cats = {}
        for r in rows:
            c = cats.setdefault(r['category'], [0, 0.0]); c[0] += 1; c[1] += r['seconds']
        man['pretrain'] = dict(n=len(rows), hours=round(sum(r['seconds'] for r in rows) / 3600, 3),
                               per_category={k: dict(n=v[0], seconds=round(v[1], 1)) for k, v in sorted(cats.items())})
        timings['pretrain'] = time.time() - t
    timings['total_python'] = time.time() - t_all
    man['timings_s'] = {k: round(v, 1) for k, v in timings.items()}
    sizes = {}
    for t in ('pretrain',) + TASKS:
        if os.path.isdir(os.path.join(OUT, t)):
            b, nf = du(os.path.join(OUT, t)); sizes[t] = dict(mb=round(b / 2 ** 20, 1), files=nf)
    man['disk'] = sizes; man['disk_total_mb'] = round(sum(v['mb'] for v in sizes.values()), 1)
    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(man, f, indent=1, sort_keys=True)
    with open(os.path.join(OUT, 'README.md'), 'w') as f:
        f.write(README % dict(size=SIZE, seed=SEED))
    print(json.dumps(dict(timings=man['timings_s'], disk_total_mb=man['disk_total_mb'],
                          counts={k: v['per_split'] for k, v in man['tasks'].items()},
                          pretrain=man['pretrain']['n']), indent=1))

# ================================================================== probe
def mel_fb(n_fft=400, n_mels=64, fmin=50.0, fmax=8000.0):
    hz2mel = lambda f: 2595 * np.log10(1 + f / 700.0)
    mel2hz = lambda m: 700 * (10 ** (m / 2595.0) - 1)
    pts = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / SR)
    fb = np.zeros((n_mels, len(bins)))
    for i in range(n_mels):
        l, c, r = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.maximum(0, np.minimum((bins - l) / (c - l), (r - bins) / (r - c)))
    return fb

_FB = None
def logmel_stats(path):
    global _FB
    if _FB is None:
        _FB = mel_fb()
    with wave.open(path) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), '<i2').astype(np.float64) / 32768
    if len(x) < 400:
        x = np.pad(x, (0, 400 - len(x)))
    n = 1 + (len(x) - 400) // 160
    idx = np.arange(400)[None, :] + 160 * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(400), axis=1)) ** 2
    lm = np.log(spec @ _FB.T + 1e-8)
    return np.concatenate([lm.mean(0), lm.std(0)])

def softmax_regression(Xtr, ytr, K, l2, iters=400, lr=0.5):
    n, d = Xtr.shape; W = np.zeros((d, K)); b = np.zeros(K)
    Y = np.eye(K)[ytr]; m = np.zeros_like(W); v = np.zeros_like(W); mb = np.zeros_like(b); vb = np.zeros_like(b)
    for t in range(1, iters + 1):
        Z = Xtr @ W + b; Z -= Z.max(1, keepdims=True); P = np.exp(Z); P /= P.sum(1, keepdims=True)
        G = Xtr.T @ (P - Y) / n + l2 * W; gb = (P - Y).mean(0)
        m = 0.9 * m + 0.1 * G; v = 0.999 * v + 0.001 * G * G
        mb = 0.9 * mb + 0.1 * gb; vb = 0.999 * vb + 0.001 * gb * gb
        W -= lr * 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        b -= lr * 0.1 * (mb / (1 - 0.9 ** t)) / (np.sqrt(vb / (1 - 0.999 ** t)) + 1e-8)
    return W, b

def main_probe():
    res = {}
    with Pool(JOBS) as pool:
        for task in TASKS:
            f = os.path.join(OUT, task, 'labels.csv')
            if not os.path.exists(f):
                continue
            rows = list(csv.DictReader(open(f)))
            feats = np.array(pool.map(logmel_stats, [os.path.join(OUT, task, r['path']) for r in rows], chunksize=32))
            labels = sorted({r['label'] for r in rows}); li = {l: i for i, l in enumerate(labels)}
            y = np.array([li[r['label']] for r in rows]); sp = np.array([r['split'] for r in rows])
            tr, va, te = sp == 'train', sp == 'valid', sp == 'test'
            mu = feats[tr].mean(0); sd = feats[tr].std(0) + 1e-6; X = (feats - mu) / sd
            best = None
            for l2 in (1e-4, 1e-3, 1e-2, 1e-1):
                W, b = softmax_regression(X[tr], y[tr], len(labels), l2)
                acc_va = float(((X[va] @ W + b).argmax(1) == y[va]).mean()) if va.any() else 0.0
                if best is None or acc_va > best[0]:
                    best = (acc_va, l2, W, b)
            acc_va, l2, W, b = best
            acc = lambda m: float(((X[m] @ W + b).argmax(1) == y[m]).mean()) if m.any() else float('nan')
            maj = float(np.bincount(y[te], minlength=len(labels)).max() / max(1, te.sum()))
            res[task] = dict(classes=len(labels), n_train=int(tr.sum()), n_valid=int(va.sum()), n_test=int(te.sum()),
                             chance=round(1.0 / len(labels), 4), majority_test=round(maj, 4), l2=l2,
                             acc_train=round(acc(tr), 4), acc_valid=round(acc_va, 4), acc_test=round(acc(te), 4))
            print(task, res[task], flush=True)
    with open(os.path.join(OUT, 'probe.json'), 'w') as f:
        json.dump(dict(features='mean+std of 64-band log-mel (25 ms / 10 ms), standardized',
                       model='multinomial logistic regression (Adam, 400 full-batch steps), L2 picked on valid',
                       tasks=res), f, indent=1)

if __name__ == '__main__':
    {'gen': main_gen, 'probe': main_probe}[sys.argv[1]]()
PYEOF

export MT_OUT="$OUT" MT_CACHE="$CACHE" MT_SIZE="$SIZE" MT_SEED="$SEED" MT_JOBS="$JOBS" \
       MT_MBROLA="$WITH_MBROLA" MT_SAM_JS="$SAM_JS" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
T1=$(date +%s)
"$PY" "$CACHE/make_tasks.py" gen
T_GEN=$(( $(date +%s) - T1 ))
log "generation done in ${T_GEN}s"
if [ "$PROBE" = 1 ]; then
  T2=$(date +%s)
  "$PY" "$CACHE/make_tasks.py" probe
  log "probe done in $(( $(date +%s) - T2 ))s"
fi
[ "${KEEP_CACHE:-1}" = 1 ] || rm -rf "$CACHE/tts" "$CACHE/decoded"
log "total $(( $(date +%s) - T0 ))s (setup ${T_SETUP}s, generation ${T_GEN}s); output in $OUT"
