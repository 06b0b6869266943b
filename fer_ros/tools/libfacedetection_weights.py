"""Read libfacedetection's CNN weights from the ``yuface`` wheel's ``libfacedetection.so`` FILE.

The library (BSD-3, Shiqi Yu et al.) keeps its network as exported data: ``param_pConvInfo``, an
array of 53 ``ConvInfoStruct`` records

    struct ConvInfoStruct { int channels; int num_filters; bool is_depthwise; bool is_pointwise;
                            bool with_relu; float* pWeights; float* pBiases; };   // 32 bytes on LP64

whose pointers name other exported float arrays (``backbone__model0_pw_weight`` ...). This module
reads them with pyelftools from the file's bytes: the symbol table gives the addresses, the section
holding an address gives its bytes, and the dynamic relocations give the pointer values (in a shared
object the stored pointer is 0 and the loader writes ``symbol + addend`` there). Nothing is loaded
or executed, so an aarch64 Jetson reads the x86_64 wheel as well as an x86_64 machine does.

Layouts (as libfacedetection's ``Filters::set`` copies them):
- 1x1 point-wise: weights float32[num_filters, channels] (row = output filter), biases float32[num_filters].
- 3x3 depth-wise: weights float32[9, channels] (row = ky * 3 + kx, cross-correlation), biases float32[channels].
"""
from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

TABLE_SYMBOL = 'param_pConvInfo'
NUM_LAYERS = 53
LIBRARY_IN_WHEEL = 'yuface/libfacedetection.so'
_RECORD = struct.Struct('<ii???5xQQ')   # LP64 little-endian ConvInfoStruct (bools packed, pointers 8-aligned)
# relocation types whose value is symbol + addend (absolute 64-bit) or base + addend (relative)
_ABSOLUTE = {'EM_X86_64': 1, 'EM_AARCH64': 257}       # R_X86_64_64, R_AARCH64_ABS64
_RELATIVE = {'EM_X86_64': 8, 'EM_AARCH64': 1027}      # R_X86_64_RELATIVE, R_AARCH64_RELATIVE


@dataclass(frozen=True)
class ConvLayer:
    """One ConvInfoStruct with its arrays. weights: float32[num_filters, channels] (point-wise) or
    float32[9, channels] (depth-wise); biases: float32[num_filters]; names: the exported symbols."""

    index: int
    channels: int
    num_filters: int
    is_depthwise: bool
    is_pointwise: bool
    with_relu: bool
    weights: np.ndarray
    biases: np.ndarray
    weight_symbol: str
    bias_symbol: str


class ElfImage:
    """Virtual-address reads of an ELF file's bytes (no loading): symbols, data, relocated pointers.

    Raises:
        ValueError: not a little-endian 64-bit ELF of a machine whose relocations this reader knows.
    """

    def __init__(self, data: bytes, name: str = 'library') -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        from elftools.elf.relocation import RelocationSection
        from elftools.elf.sections import SymbolTableSection

        self.name = name
        try:
            self._elf = ELFFile(io.BytesIO(data))
        except ELFError as exc:
            raise ValueError(f'{name}: not an ELF file ({exc})') from exc
        self.machine = self._elf.header.e_machine
        if self._elf.elfclass != 64 or not self._elf.little_endian or self.machine not in _ABSOLUTE:
            raise ValueError(f'{name}: need a little-endian 64-bit x86_64/aarch64 ELF, got {self.machine} '
                             f'{self._elf.elfclass}-bit')
        self._sections = [s for s in self._elf.iter_sections()
                          if s['sh_addr'] and s['sh_type'] != 'SHT_NOBITS' and s['sh_size']]
        dynsym = self._elf.get_section_by_name('.dynsym')
        self._dynsym = dynsym if isinstance(dynsym, SymbolTableSection) else None
        self._symbols: dict[str, tuple[int, int]] = {}
        for table in (self._elf.get_section_by_name('.symtab'), self._dynsym):
            if isinstance(table, SymbolTableSection):
                for sym in table.iter_symbols():
                    if sym.name and sym['st_shndx'] != 'SHN_UNDEF':
                        self._symbols.setdefault(sym.name, (sym['st_value'], sym['st_size']))
        self._relocations = {}
        for section in self._elf.iter_sections():
            if isinstance(section, RelocationSection) and section['sh_type'] == 'SHT_RELA':
                for rel in section.iter_relocations():
                    self._relocations[rel['r_offset']] = rel

    def symbol(self, name: str) -> tuple[int, int]:
        """(address, size in bytes) of a defined symbol. Raises KeyError naming the library."""
        if name not in self._symbols:
            raise KeyError(f'{self.name}: no symbol {name!r}')
        return self._symbols[name]

    def symbol_at(self, address: int) -> str:
        """The name of the data symbol that starts at ``address`` ('' when none)."""
        for name, (value, size) in self._symbols.items():
            if value == address and size:
                return name
        return ''

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at virtual ``address``. Raises ValueError when no file section holds them."""
        for section in self._sections:
            start = section['sh_addr']
            if start <= address and address + size <= start + section['sh_size']:
                offset = address - start
                return section.data()[offset:offset + size]
        raise ValueError(f'{self.name}: no section holds {size} bytes at {address:#x}')

    def pointer(self, address: int) -> int:
        """The 64-bit pointer stored at ``address`` as the dynamic loader would set it."""
        rel = self._relocations.get(address)
        if rel is None:
            return struct.unpack('<Q', self.read(address, 8))[0]
        kind = rel['r_info_type']
        if kind == _RELATIVE[self.machine]:
            return rel['r_addend']
        if kind == _ABSOLUTE[self.machine] and self._dynsym is not None:
            sym = self._dynsym.get_symbol(rel['r_info_sym'])
            if sym['st_shndx'] == 'SHN_UNDEF':
                raise ValueError(f'{self.name}: pointer at {address:#x} names undefined symbol {sym.name!r}')
            return sym['st_value'] + rel['r_addend']
        raise ValueError(f'{self.name}: relocation type {kind} at {address:#x} is not a data pointer')


def read_conv_layers(data: bytes, name: str = LIBRARY_IN_WHEEL) -> list[ConvLayer]:
    """The 53 layers of ``param_pConvInfo`` from the bytes of libfacedetection.so.

    Raises:
        ValueError / KeyError: not that library, or a record whose shapes or arrays do not add up
            (the message names the layer and the symbol).
    """
    elf = ElfImage(data, name)
    table, size = elf.symbol(TABLE_SYMBOL)
    if size != NUM_LAYERS * _RECORD.size:
        raise ValueError(f'{name}: {TABLE_SYMBOL} is {size} bytes; {NUM_LAYERS} records of {_RECORD.size} '
                         'bytes expected (another libfacedetection version?)')
    layers = []
    for i in range(NUM_LAYERS):
        record = table + i * _RECORD.size
        channels, filters, depthwise, pointwise, relu, _, _ = _RECORD.unpack(elf.read(record, _RECORD.size))
        if depthwise == pointwise or channels < 1 or filters < 1 or (depthwise and channels != filters):
            raise ValueError(f'{name}: layer {i}: unsupported record channels={channels} filters={filters} '
                             f'depthwise={depthwise} pointwise={pointwise}')
        rows = 9 if depthwise else filters
        arrays: list[tuple[np.ndarray, str]] = []     # (values, the data symbol holding them)
        for field_offset, count in ((16, rows * channels), (24, filters)):
            address = elf.pointer(record + field_offset)
            symbol = elf.symbol_at(address)
            if symbol and elf.symbol(symbol)[1] != 4 * count:
                raise ValueError(f'{name}: layer {i}: {symbol} holds {elf.symbol(symbol)[1]} bytes, the record '
                                 f'needs {4 * count}')
            arrays.append((np.frombuffer(elf.read(address, 4 * count), '<f4').astype(np.float32), symbol))
        (weights, weight_symbol), (biases, bias_symbol) = arrays
        layers.append(ConvLayer(i, channels, filters, bool(depthwise), bool(pointwise), bool(relu),
                                weights.reshape(rows, channels), biases, weight_symbol, bias_symbol))
    return layers


def library_bytes(wheel: str) -> bytes:
    """The bytes of ``yuface/libfacedetection.so`` inside a yuface wheel (any platform tag).

    Raises:
        FileNotFoundError: no such file. ValueError: not a zip, or no library inside.
    """
    import os

    if not os.path.isfile(wheel):
        raise FileNotFoundError(f'no such file: {wheel}')
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(LIBRARY_IN_WHEEL)
    except zipfile.BadZipFile as exc:
        raise ValueError(f'{wheel}: not a wheel (zip) file') from exc
    except KeyError as exc:
        raise ValueError(f'{wheel}: has no {LIBRARY_IN_WHEEL}') from exc
