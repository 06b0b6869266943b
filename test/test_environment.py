"""The distro environment: Fast DDS profile variables per distro, and one install tree per distro."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_ros.ros.fastdds_profile import (
    NEW_VARIABLE,
    OLD_VARIABLE,
    PROFILE_NAME,
    main,
    profile_environment,
    profile_variables,
)

from ros_harness import NODE_EXE, PARAMS_FILE, requires_ros

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('distro,expected', [
    ('kilted', (NEW_VARIABLE,)), ('rolling', (NEW_VARIABLE,)), (None, (NEW_VARIABLE,)),
    ('jazzy', (NEW_VARIABLE, OLD_VARIABLE)), ('humble', (NEW_VARIABLE, OLD_VARIABLE)),
    ('Jazzy', (NEW_VARIABLE, OLD_VARIABLE)),
])
def test_variables_per_distro(distro, expected):
    assert profile_variables(distro) == expected


def test_a_profile_the_user_set_is_kept_for_every_name():
    mine = {'ROS_DISTRO': 'jazzy', OLD_VARIABLE: '/robot/dds.xml'}
    assert profile_environment('/pkg/big.xml', environ=mine) == {NEW_VARIABLE: '/robot/dds.xml',
                                                                 OLD_VARIABLE: '/robot/dds.xml'}
    assert profile_environment('/pkg/big.xml', environ={'ROS_DISTRO': 'kilted'}) == {NEW_VARIABLE: '/pkg/big.xml'}
    # Kilted reads only the new name: an old-name setting is not carried over (it would only warn)
    assert profile_environment('/pkg/big.xml', 'kilted', {OLD_VARIABLE: '/x.xml'}) == {NEW_VARIABLE: '/pkg/big.xml'}


def test_shell_exports(capsys, tmp_path, monkeypatch):
    for name in (NEW_VARIABLE, OLD_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    profile = tmp_path / "it's big.xml"
    profile.write_text('<dds/>')
    assert main([str(profile), 'humble']) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split('=')[0] for line in out] == [f'export {NEW_VARIABLE}', f'export {OLD_VARIABLE}']
    shell = subprocess.run(['bash', '-c', out[1] + f'; printf %s "${OLD_VARIABLE}"'], capture_output=True, text=True)
    assert shell.stdout == str(profile)
    assert main([str(tmp_path / 'missing.xml')]) == 2
    assert 'missing.xml' in capsys.readouterr().err


def test_launch_file_takes_the_names_from_the_one_rule():
    text = (REPO / 'launch' / 'fer.launch.py').read_text()
    assert 'profile_environment(' in text
    assert f"'{NEW_VARIABLE}'" not in text and f"'{OLD_VARIABLE}'" not in text


@pytest.mark.ros
@requires_ros
def test_active_environment_loads_the_profile_the_way_its_fast_dds_reads_it():
    distro = os.environ.get('ROS_DISTRO')
    assert distro, 'ROS_DISTRO unset: scripts/with_ros.sh exports it'
    for name in profile_variables(distro):
        path = Path(os.environ[name])
        assert path.name == PROFILE_NAME and path.is_file(), (name, path)
    if profile_variables(distro) == (NEW_VARIABLE,):
        assert OLD_VARIABLE not in os.environ, f'{OLD_VARIABLE} set on {distro}: Fast DDS 3 warns in every process'


@pytest.mark.ros
@requires_ros
def test_installed_node_belongs_to_this_environment():
    """The install tree found for this run is on AMENT_PREFIX_PATH, and its node starts with this run's
    venv Python (each distro's venv lives in the repository; a system ROS 2 names its own python3)."""
    prefix = NODE_EXE.parents[2]
    assert str(prefix) in os.environ['AMENT_PREFIX_PATH'].split(os.pathsep)
    assert PARAMS_FILE.is_file()
    interpreter = Path(NODE_EXE.read_text().splitlines()[0].removeprefix('#!'))
    if interpreter.is_relative_to(REPO):
        assert interpreter == Path(sys.executable), (interpreter, sys.executable)
        assert prefix.parent.name.removeprefix('install') == interpreter.parents[1].name.removeprefix('.venv'), \
            f'{prefix} is not the install tree of the venv {interpreter.parents[1]}'
