"""Packaging for mtlmad: every value comes from settings.ini, the nbdev project's single source."""
import shlex
from configparser import ConfigParser
from pathlib import Path

import setuptools

HERE = Path(__file__).resolve().parent
config = ConfigParser(delimiters=['='])
if not config.read(HERE / 'settings.ini', encoding='utf-8'):
    raise FileNotFoundError(f'{HERE / "settings.ini"}: not found; setup.py takes every package setting from it')
cfg = config['DEFAULT']

# settings.ini names the licence of the code; the embedded brain MRI (mtlmad/data) is BSD-3-Clause.
licenses = {'apache2': ('Apache-2.0', 'Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = {s[0]: s for s in ('1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta',
                              '5 - Production/Stable', '6 - Mature', '7 - Inactive')}
py_versions = '3.9 3.10 3.11 3.12 3.13'.split()

lib_path = cfg['lib_path']
spdx, lic_name, lic_classifier = licenses[cfg['license'].lower()]
min_python = cfg['min_python']
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
volumes_requirements = shlex.split(cfg.get('volumes_requirements', ''))  # NIfTI and DICOM volumes: pip install "mtlmad[volumes]"
console_scripts = cfg.get('console_scripts', '').split()
data_licence = f'{lib_path}/data/LICENSE-colin27.txt'
run_packages = setuptools.find_namespace_packages(include=[lib_path + '.pretrained', lib_path + '.pretrained.*'])

# setuptools >= 77 writes SPDX licence metadata (PEP 639); older ones take the name and a classifier.
if int(setuptools.__version__.split('.')[0]) >= 77:
    license_kw = dict(license_expression=f'{spdx} AND BSD-3-Clause', license_files=['LICENSE', data_licence])
    license_classifiers = []
else:
    license_kw = dict(license=lic_name)
    license_classifiers = ['License :: ' + lic_classifier]

readme = HERE / 'README.md'  # built from nbs/index.ipynb; an sdist or checkout may lack it
long_description = readme.read_text(encoding='utf-8') if readme.exists() else cfg['description']

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=long_description,
    long_description_content_type='text/markdown' if readme.exists() else 'text/plain',
    author=cfg['author'],
    author_email=cfg['author_email'],
    url=cfg['git_url'],
    project_urls={'Documentation': cfg['doc_host'] + cfg['doc_baseurl'], 'Source': cfg['git_url']},
    keywords=cfg['keywords'],
    classifiers=[
        'Development Status :: ' + statuses[cfg['status']],
        'Intended Audience :: ' + cfg['audience'],
        'Natural Language :: ' + cfg['language'],
        'Topic :: Scientific/Engineering :: Medical Science Apps.',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ] + license_classifiers
      + ['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]],
    **license_kw,
    # mtlmad/data is the data layer (a package) and also ships the embedded MRI: its npz, md and txt files go with it.
    # mtlmad/pretrained/<name>/ holds the runs shipped with mtlmad (`make pretrained`), data of the package too.
    # The run folders have no __init__.py: they are listed as namespace packages (run_packages), so setuptools ships
    # their files without warning that an importable folder was left out.
    packages=setuptools.find_packages(include=[lib_path, lib_path + '.*']) + run_packages,
    package_data={lib_path + '.data': ['*.npz', '*.md', '*.txt'], **{p: ['*.pt', '*.json', '*.md'] for p in run_packages}},
    include_package_data=True,
    python_requires='>=' + min_python,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'volumes': volumes_requirements},
    zip_safe=False,
    entry_points={
        'console_scripts': console_scripts,
        'nbdev': [f'{lib_path}={lib_path}._modidx:d'],
    },
)
