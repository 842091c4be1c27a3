from pinworks_classifier.app import create_app
from pinworks_common.service import run_service

run_service(create_app)
