"""Dataset parsers on tiny fixtures written in the real formats (FER2013 csv, CK+ raw and folder
export, JAFFE names, folder-per-class), malformed variants, and the splits."""
from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

from fer_ros.core.labels import EXPRESSIONS
from training.config import load_config
from training.datasets import DatasetError, load_dataset
from training.splits import describe, make_split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(REPO, 'assets', 'astronaut.jpg')
COFFEE = os.path.join(REPO, 'assets', 'coffee.jpg')
IDX = {name: i for i, name in enumerate(EXPRESSIONS)}


def cfg_for(fmt: str, path, *overrides: str):
    return load_config(None, [f'data.format={fmt}', f'data.path={path}', 'train.progress=false', *overrides])


def pixels(seed: int, n: int = 48 * 48) -> str:
    return ' '.join(str(v) for v in np.random.default_rng(seed).integers(0, 256, n))


def write_fer_csv(path, rows, header='emotion,pixels,Usage'):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(header + '\n')
        for r in rows:
            f.write(','.join(str(v) for v in r) + '\n')


def gray_png(path, value: int, size=(60, 50)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.full(size, value, np.uint8)
    img[10:20, 10:30] = 255 - value  # not flat: resizing must keep structure
    assert cv2.imwrite(str(path), img)


# ---------------------------------------------------------------- FER2013

def test_fer2013_rows_labels_usage_and_pixels(tmp_path):
    csv = tmp_path / 'fer2013.csv'
    rows = [(0, pixels(1), 'Training'), (3, pixels(2), 'Training'), (6, pixels(3), 'PublicTest'),
            (5, pixels(4), 'PrivateTest')]
    write_fer_csv(csv, [(e, f'"{p}"', u) for e, p, u in rows])
    faces = load_dataset(cfg_for('fer2013', csv))
    assert faces.labels.tolist() == [0, 3, 6, 5]
    assert faces.usage == ['train', 'train', 'val', 'test']
    assert faces.images.shape == (4, 48, 48, 3) and faces.images.dtype == np.uint8
    first = np.array(rows[0][1].split(), np.uint8).reshape(48, 48)
    assert np.array_equal(faces.images[0, :, :, 0], first)          # gray replicated to RGB
    assert np.array_equal(faces.images[0, :, :, 2], first)
    assert faces.sources[2] == f'{csv}:4'
    gray = load_dataset(cfg_for('fer2013', csv, 'model.in_channels=1'))
    assert gray.images.shape == (4, 48, 48, 1)


def test_fer2013_kaggle_header_with_spaces_and_no_usage(tmp_path):
    csv = tmp_path / 'icml_face_data.csv'
    write_fer_csv(csv, [(2, ' Training', f'"{pixels(5)}"')], header='emotion, Usage, pixels')
    assert load_dataset(cfg_for('fer2013', csv)).labels.tolist() == [2]
    plain = tmp_path / 'train.csv'
    write_fer_csv(plain, [(1, f'"{pixels(6)}"')], header='emotion,pixels')
    faces = load_dataset(cfg_for('fer2013', plain))
    assert faces.usage is None and faces.labels.tolist() == [1]


@pytest.mark.parametrize('row, message', [
    ((7, pixels(1), 'Training'), 'emotion 7 out of range 0..6'),
    (('x', pixels(1), 'Training'), "emotion 'x' is not an integer"),
    ((1, pixels(1, 2303), 'Training'), 'pixels field has 2303 values'),
    ((1, pixels(1)[:-3] + ' 1a', 'Training'), 'non-integer value'),
    ((1, pixels(1)[:-3] + ' 300', 'Training'), 'pixel value 300 out of range'),
    ((1, pixels(1), 'Validation'), "Usage 'Validation'"),
])
def test_fer2013_malformed_rows_name_file_and_line(tmp_path, row, message):
    csv = tmp_path / 'bad.csv'
    e, p, u = row
    write_fer_csv(csv, [(0, f'"{pixels(9)}"', 'Training'), (e, f'"{p}"', u)])
    with pytest.raises(DatasetError) as err:
        load_dataset(cfg_for('fer2013', csv))
    assert f'{csv}:3' in str(err.value) and message in str(err.value)


def test_fer2013_reports_every_bad_row_not_just_the_first(tmp_path):
    csv = tmp_path / 'bad.csv'
    write_fer_csv(csv, [(9, f'"{pixels(1)}"', 'Training'), (0, f'"{pixels(2)}"', 'Training'),
                        (1, '"1 2 3"', 'Training')])
    with pytest.raises(DatasetError, match='2 bad item') as err:
        load_dataset(cfg_for('fer2013', csv))
    assert f'{csv}:2' in str(err.value) and f'{csv}:4' in str(err.value)


def test_fer2013_missing_column_and_missing_file(tmp_path):
    csv = tmp_path / 'nocol.csv'
    write_fer_csv(csv, [(0, 'x')], header='label,image')
    with pytest.raises(DatasetError, match='lacks column'):
        load_dataset(cfg_for('fer2013', csv))
    with pytest.raises(FileNotFoundError, match='nothere.csv'):
        load_dataset(cfg_for('fer2013', tmp_path / 'nothere.csv'))


# ---------------------------------------------------------------- CK+

def make_ckplus_raw(root, sequences):
    """sequences: (subject, seq, n_frames, emotion text or None)."""
    for subject, seq, n, emotion in sequences:
        for k in range(1, n + 1):
            gray_png(root / 'cohn-kanade-images' / subject / seq / f'{subject}_{seq}_{k:08d}.png', 20 * k)
        if emotion is not None:
            d = root / 'Emotion' / subject / seq
            d.mkdir(parents=True, exist_ok=True)
            (d / f'{subject}_{seq}_{n:08d}_emotion.txt').write_text(f'   {emotion}\n')


def test_ckplus_raw_layout_peak_frames_contempt_dropped(tmp_path, capsys):
    make_ckplus_raw(tmp_path, [('S005', '001', 5, '3.0000000e+00'),   # disgust
                               ('S010', '002', 4, '2.0000000e+00'),   # contempt: dropped
                               ('S010', '004', 6, '5.0000000e+00'),   # happy
                               ('S011', '001', 3, None)])             # unlabelled: not used
    faces = load_dataset(cfg_for('ckplus', tmp_path, 'data.crop=center', 'data.ckplus_peak_frames=2',
                                 'data.ckplus_neutral_first=true'))
    # per sequence: 2 peak frames + the first frame as neutral (also for the dropped contempt one)
    assert faces.labels.tolist() == [IDX['disgusted']] * 2 + [IDX['neutral']] + [IDX['neutral']] \
        + [IDX['happy']] * 2 + [IDX['neutral']]
    assert faces.subjects == ['S005'] * 3 + ['S010'] * 4
    assert faces.sources[0].endswith('S005_001_00000004.png') and faces.sources[1].endswith('00000005.png')
    assert faces.dropped == {'contempt': 2}
    assert "dropped 2 image(s) labelled 'contempt'" in capsys.readouterr().out


@pytest.mark.parametrize('text, message', [('abc', 'expected one number'), ('9.0', 'not one of 0..7')])
def test_ckplus_bad_label_file_is_named(tmp_path, text, message):
    make_ckplus_raw(tmp_path, [('S005', '001', 3, '1.0'), ('S006', '001', 3, text)])
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(cfg_for('ckplus', tmp_path, 'data.crop=center'))
    assert 'S006_001_00000003_emotion.txt' in str(err.value)


def test_ckplus_folder_export_with_subjects(tmp_path, capsys):
    for label, names in {'anger': ['S010_004_00000017.png', 'S011_001_00000010.png'],
                         'contempt': ['S012_001_00000005.png'], 'surprise': ['S010_002_00000014.png']}.items():
        for i, n in enumerate(names):
            gray_png(tmp_path / label / n, 40 + i, size=(48, 48))
    faces = load_dataset(cfg_for('ckplus', tmp_path, 'data.crop=none'))
    assert sorted(zip(faces.subjects, faces.labels.tolist())) == [
        ('S010', IDX['angry']), ('S010', IDX['surprised']), ('S011', IDX['angry'])]
    assert faces.dropped == {'contempt': 1}
    assert 'contempt' in capsys.readouterr().out


# ---------------------------------------------------------------- JAFFE

def test_jaffe_names_subjects_labels(tmp_path):
    for name in ('KA.AN1.39.tiff', 'KA.HA2.30.tiff', 'YM.SU1.58.tiff', 'NA.NE1.210.tiff', 'KM.FE3.17.tiff'):
        gray_png(tmp_path / 'jaffe' / name, 90, size=(256, 256))
    (tmp_path / 'jaffe' / 'README.txt').write_text('not an image')
    faces = load_dataset(cfg_for('jaffe', tmp_path / 'jaffe', 'data.crop=center'))
    assert faces.subjects == ['KA', 'KA', 'KM', 'NA', 'YM']
    assert faces.labels.tolist() == [IDX['angry'], IDX['happy'], IDX['scared'], IDX['neutral'], IDX['surprised']]
    assert faces.images.shape == (5, 48, 48, 3)


def test_jaffe_bad_names_and_unreadable_images_are_all_reported(tmp_path):
    gray_png(tmp_path / 'KA.AN1.39.tiff', 90)
    gray_png(tmp_path / 'holiday.tiff', 90)
    gray_png(tmp_path / 'KA.XX1.40.tiff', 90)
    (tmp_path / 'KM.HA1.4.tiff').write_bytes(b'this is not a tiff')
    with pytest.raises(DatasetError) as err:
        load_dataset(cfg_for('jaffe', tmp_path, 'data.crop=center'))
    text = str(err.value)
    assert 'holiday.tiff: name is not' in text and "code 'XX'" in text
    # names are checked before decoding; fix them and the unreadable image is named
    os.remove(tmp_path / 'holiday.tiff')
    os.remove(tmp_path / 'KA.XX1.40.tiff')
    with pytest.raises(DatasetError, match=r'KM\.HA1\.4\.tiff: unreadable image'):
        load_dataset(cfg_for('jaffe', tmp_path, 'data.crop=center'))


def test_detect_crop_finds_the_face_and_names_files_without_one(tmp_path):
    shutil.copy(ASTRONAUT, tmp_path / 'KA.HA1.1.jpg')
    faces = load_dataset(cfg_for('jaffe', tmp_path, 'data.crop=detect', 'data.crop_margin=0.2'))
    x0, y0, x1, y1 = faces.boxes[0]
    # a square crop with margin 0.2 around the face: the face box sits in the middle ~1/1.2 of it
    assert 0.0 <= x0 < 0.2 and 0.8 < x1 <= 1.0 and 0.0 <= y0 < 0.3 and 0.7 < y1 <= 1.0
    assert faces.images.shape == (1, 48, 48, 3)
    shutil.copy(COFFEE, tmp_path / 'KA.SA1.2.jpg')
    with pytest.raises(DatasetError, match=r'KA\.SA1\.2\.jpg: no face found'):
        load_dataset(cfg_for('jaffe', tmp_path, 'data.crop=detect'))


# ---------------------------------------------------------------- folder

def test_folder_spellings_indices_split_dirs_and_subjects(tmp_path):
    layout = {'train/Happiness': ['p1_a.png', 'p2_a.png'], 'train/3': ['p3_a.png'], 'train/fear': ['p1_b.png'],
              'test/happy': ['p4_a.png'], 'test/FEAR': ['p4_b.jpg']}
    for d, names in layout.items():
        for n in names:
            gray_png(tmp_path / d / n, 100, size=(64, 64))
    (tmp_path / 'train' / 'fear' / '.DS_Store').write_bytes(b'\0')
    faces = load_dataset(cfg_for('folder', tmp_path, r'data.subject_pattern=^(p\d+)_'))
    got = sorted(zip(faces.usage, faces.subjects, faces.labels.tolist()))
    assert got == [('test', 'p4', IDX['scared']), ('test', 'p4', IDX['happy']), ('train', 'p1', IDX['scared']),
                   ('train', 'p1', IDX['happy']), ('train', 'p2', IDX['happy']), ('train', 'p3', IDX['happy'])]
    split = make_split(faces, load_config(None, ['data.path=x', 'split.mode=official']).split)
    assert len(split.train) == 4 and len(split.test) == 2


def test_folder_unknown_label_is_an_error_unless_ignored(tmp_path, capsys):
    gray_png(tmp_path / 'happy' / 'a.png', 10)
    gray_png(tmp_path / 'bored' / 'b.png', 10)
    with pytest.raises(DatasetError, match="folder name 'bored' is not an expression label"):
        load_dataset(cfg_for('folder', tmp_path))
    faces = load_dataset(cfg_for('folder', tmp_path, 'data.ignore_labels=[bored]'))
    assert faces.labels.tolist() == [IDX['happy']] and faces.dropped == {'bored': 1}
    assert "dropped 1 image(s) labelled 'bored'" in capsys.readouterr().out


def test_folder_subject_pattern_must_match(tmp_path):
    gray_png(tmp_path / 'sad' / 'S001_x.png', 10)
    gray_png(tmp_path / 'sad' / 'nobody.png', 10)
    with pytest.raises(DatasetError, match='nobody.png: file name does not match'):
        load_dataset(cfg_for('folder', tmp_path, r'data.subject_pattern=^(S\d+)_'))


# ---------------------------------------------------------------- splits

def test_random_split_is_stratified_70_30_and_seeded():
    faces = load_dataset(load_config(None, ['data.format=synthetic', 'data.synthetic_per_class=20',
                                            'train.progress=false']))
    cfg = load_config(None, ['data.path=x', 'split.mode=random', 'split.test_fraction=0.3', 'split.seed=3']).split
    a, b = make_split(faces, cfg), make_split(faces, cfg)
    assert np.array_equal(a.test, b.test)
    assert np.bincount(faces.labels[a.test]).tolist() == [6] * 7
    assert len(np.intersect1d(a.train, a.test)) == 0 and len(a.train) + len(a.test) == len(faces)
    assert describe(a).startswith('random 70/30')


def test_subject_split_keeps_people_on_one_side(tmp_path):
    for s in range(10):
        for e in ('AN', 'HA', 'SA'):
            gray_png(tmp_path / f'S{s}.{e}1.{s}.tiff', 10 * s, size=(48, 48))
    faces = load_dataset(cfg_for('jaffe', tmp_path, 'data.crop=none'))
    cfg = load_config(None, ['data.path=x', 'split.mode=subject', 'split.val_fraction=0.2']).split
    split = make_split(faces, cfg)
    subj = np.asarray(faces.subjects)
    sides = [set(subj[split.train]), set(subj[split.val]), set(subj[split.test])]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sides[2] == set(split.info['test_subjects']) and len(sides[2]) == 3
    assert 'subject-independent (3 of 10 subjects in test)' in describe(split)


def test_split_modes_need_their_metadata():
    faces = load_dataset(load_config(None, ['data.format=synthetic', 'train.progress=false']))
    for mode, word in (('official', 'no official split'), ('subject', 'no subject ids')):
        with pytest.raises(ValueError, match=word):
            make_split(faces, load_config(None, ['data.path=x', f'split.mode={mode}']).split)
