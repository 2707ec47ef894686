# Source me: makes (once) and activates the project's virtual environment in .venv.
# Set PML_METRIX_VENV to use another folder.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/system-packages.sh"
venv=${PML_METRIX_VENV:-$root/.venv}
stamp=$venv/.pml_metrix-installed
deps_hash=$(cat "$root/setup.cfg" "$root/scripts/env.sh" | sha256sum | cut -c1-16)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$deps_hash" ]; then
    echo "Setting up $venv (torch and friends: a few minutes the first time)..." >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
    "$venv/bin/python" -m pip install -q -e "$root[app,test,docs]"  # the command, and the tests build the docs too
    echo "$deps_hash" > "$stamp"
fi
export PATH=$venv/bin:$PATH
